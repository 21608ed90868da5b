/*
 * The golden driver: replays the cases of an input file (written by
 * tests/test_golden.py) through fa_run, at every instruction-set level this CPU
 * has (fa_levels) and on 1 and 3 threads, and writes the buffers after each case
 * (every buffer of every tensor, in order) to the output file. It fails if any two
 * of those runs differ in a single bit. The test builds it with each compiler and
 * for each machine (aarch64 under qemu-user) and compares the outputs.
 *
 * Input (little-endian): "FAGOLD1\n"; the signed and the unsigned 8-bit map
 * (value[256] f32, zero u32, then per search binade[32] u32, bucket[2][256] u32);
 * u32 cases; per case: u32 name length, the name, u32 algo, dtype, steps, tensors,
 * has format; with a format u32 param, grad and state store, stochastic, block,
 * seed; f64 coef[steps][FA_MAX_COEF]; per tensor u64 n, u32 mask of its buffers
 * (bit b < 5: buf[b], 5 + j: absmax[j], 8: param_copy), per buffer u64 bytes and
 * the bytes. Step s (from 1) of tensor t keys its rounding with
 * fa_rounding_key(seed, t, s).
 *
 *     golden INPUT OUTPUT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define NBUF (FA_MAX_BUFS + FA_MAX_STATE + 1) /* buffers, absmax, param copy */
#define COPY (FA_MAX_BUFS + FA_MAX_STATE)
#define MAX_TENSORS 16
#define THREADS 3

typedef struct {
    char name[128];
    uint32_t algo, dtype, steps, ntensors, has_format, seed;
    fa_format format;
    double *coef;
    size_t n[MAX_TENSORS];
    size_t bytes[MAX_TENSORS][NBUF]; /* 0: absent */
    unsigned char *start[MAX_TENSORS][NBUF];
} golden_case;

static const unsigned char *in, *in_end;

static void fail(const char *what)
{
    fprintf(stderr, "golden: %s\n", what);
    exit(1);
}

static void take(void *out, size_t n)
{
    if ((size_t)(in_end - in) < n)
        fail("the input ends early");
    memcpy(out, in, n);
    in += n;
}

static uint32_t take_u32(void)
{
    uint32_t x;
    take(&x, sizeof x);
    return x;
}

static uint64_t take_u64(void)
{
    uint64_t x;
    take(&x, sizeof x);
    return x;
}

static void read_map(fa_qmap *q)
{
    take(q->value, sizeof q->value);
    q->zero = take_u32();
    for (int s = 0; s < 2; s++) {
        take(q->search[s].binade, sizeof q->search[s].binade);
        take(q->search[s].bucket, sizeof q->search[s].bucket);
    }
    fa_qmap_init(q);
}

static void read_case(golden_case *c, const fa_qmap *maps)
{
    const uint32_t length = take_u32();

    if (length >= sizeof c->name)
        fail("a case name is too long");
    memset(c, 0, sizeof *c);
    take(c->name, length);
    c->algo = take_u32();
    c->dtype = take_u32();
    c->steps = take_u32();
    c->ntensors = take_u32();
    c->has_format = take_u32();
    if (c->algo >= FA_NUM_ALGOS || c->dtype >= FA_NUM_DTYPES || c->ntensors > MAX_TENSORS)
        fail("a case is out of range");
    if (c->has_format) {
        c->format.param = (fa_store)take_u32();
        c->format.grad = (fa_store)take_u32();
        c->format.state = (fa_store)take_u32();
        c->format.stochastic = (int)take_u32();
        c->format.block = take_u32();
        c->format.qmap[0] = &maps[0];
        c->format.qmap[1] = &maps[1];
        c->seed = take_u32();
    }
    c->coef = malloc(sizeof(double) * FA_MAX_COEF * c->steps);
    if (c->coef == NULL)
        fail("out of memory");
    take(c->coef, sizeof(double) * FA_MAX_COEF * c->steps);
    for (uint32_t t = 0; t < c->ntensors; t++) {
        c->n[t] = take_u64();
        const uint32_t mask = take_u32();
        for (int b = 0; b < NBUF; b++)
            if (mask >> b & 1U) {
                c->bytes[t][b] = take_u64();
                if ((size_t)(in_end - in) < c->bytes[t][b])
                    fail("the input ends early");
                c->start[t][b] = (unsigned char *)in;
                in += c->bytes[t][b];
            }
    }
}

/* One run's buffers: each starts at a different offset from a 64-byte line. */
typedef struct {
    unsigned char *memory[MAX_TENSORS][NBUF], *buf[MAX_TENSORS][NBUF];
    fa_tensor tensors[MAX_TENSORS];
} golden_run;

static void run_case(const golden_case *c, golden_run *r)
{
    for (uint32_t t = 0; t < c->ntensors; t++) {
        fa_tensor *x = &r->tensors[t];
        memset(x, 0, sizeof *x);
        x->n = c->n[t];
        x->dtype = (fa_dtype)c->dtype;
        x->format = c->has_format ? &c->format : NULL;
        for (int b = 0; b < NBUF; b++) {
            r->memory[t][b] = r->buf[t][b] = NULL;
            if (c->bytes[t][b] == 0)
                continue;
            r->memory[t][b] = malloc(c->bytes[t][b] + 128);
            if (r->memory[t][b] == NULL)
                fail("out of memory");
            const uintptr_t line = ((uintptr_t)r->memory[t][b] + 63) & ~(uintptr_t)63;
            r->buf[t][b] = (unsigned char *)line + 8 * ((t + (uint32_t)b) % 8);
            memcpy(r->buf[t][b], c->start[t][b], c->bytes[t][b]);
        }
        for (int b = 0; b < FA_MAX_BUFS; b++)
            x->buf[b] = r->buf[t][b];
        for (int j = 0; j < FA_MAX_STATE; j++)
            x->absmax[j] = (float *)r->buf[t][FA_MAX_BUFS + j];
        x->param_copy = (uint16_t *)r->buf[t][COPY];
    }
    for (uint32_t s = 0; s < c->steps; s++) {
        for (uint32_t t = 0; t < c->ntensors; t++) {
            r->tensors[t].coef = c->coef + (size_t)s * FA_MAX_COEF;
            r->tensors[t].key = fa_rounding_key(c->seed, t, s + 1);
        }
        fa_run((fa_algo)c->algo, r->tensors, c->ntensors, fa_get_num_threads());
    }
}

static void free_run(const golden_case *c, golden_run *r)
{
    for (uint32_t t = 0; t < c->ntensors; t++)
        for (int b = 0; b < NBUF; b++)
            free(r->memory[t][b]);
}

/* The bytes of every buffer of a case. */
static size_t case_bytes(const golden_case *c)
{
    size_t bytes = 0;

    for (uint32_t t = 0; t < c->ntensors; t++)
        for (int b = 0; b < NBUF; b++)
            bytes += c->bytes[t][b];
    return bytes;
}

/* The buffers after a run, one after the other. */
static void collect(const golden_case *c, const golden_run *r, unsigned char *out)
{
    for (uint32_t t = 0; t < c->ntensors; t++)
        for (int b = 0; b < NBUF; b++)
            if (c->bytes[t][b] > 0) {
                memcpy(out, r->buf[t][b], c->bytes[t][b]);
                out += c->bytes[t][b];
            }
}

int main(int argc, char **argv)
{
    static fa_qmap maps[2];
    static golden_case c;
    static golden_run r;
    const int threads[2] = {1, THREADS};

    if (argc != 3)
        fail("usage: golden INPUT OUTPUT");
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0)
        fail("cannot open the input");
    const long size = ftell(f);
    unsigned char *data = size > 0 ? malloc((size_t)size) : NULL;
    if (data == NULL || fseek(f, 0, SEEK_SET) != 0 || fread(data, 1, (size_t)size, f) != (size_t)size)
        fail("cannot read the input");
    fclose(f);
    in = data;
    in_end = data + size;
    char magic[8];
    take(magic, sizeof magic);
    if (memcmp(magic, "FAGOLD1\n", 8) != 0)
        fail("not a golden input");
    read_map(&maps[0]);
    read_map(&maps[1]);
    FILE *out = fopen(argv[2], "wb");
    if (out == NULL)
        fail("cannot open the output");

    fprintf(stderr, "levels:");
    for (size_t l = 0; l < fa_num_levels; l++)
        fprintf(stderr, " %s%s", fa_levels[l]->name,
                fa_level_supported(fa_levels[l]) ? "" : " (not this CPU)");
    fa_set_num_threads(THREADS);
    fprintf(stderr, "; threads: 1 and %d\n", fa_get_num_threads());

    const uint32_t ncases = take_u32();
    int status = 0;
    for (uint32_t k = 0; k < ncases; k++) {
        read_case(&c, maps);
        const size_t bytes = case_bytes(&c);
        unsigned char *first = malloc(bytes + 1), *again = malloc(bytes + 1);
        int runs = 0;
        if (first == NULL || again == NULL)
            fail("out of memory");
        for (size_t l = 0; l < fa_num_levels; l++) {
            if (!fa_level_supported(fa_levels[l]))
                continue;
            fa_active_level = fa_levels[l];
            for (int j = 0; j < 2; j++) {
                fa_set_num_threads(threads[j]);
                run_case(&c, &r);
                collect(&c, &r, runs++ == 0 ? first : again);
                free_run(&c, &r);
                if (runs > 1 && memcmp(first, again, bytes) != 0) {
                    fprintf(stderr, "golden: %s differs at level %s on %d threads\n", c.name,
                            fa_levels[l]->name, threads[j]);
                    status = 1;
                }
            }
        }
        if (fwrite(first, 1, bytes, out) != bytes)
            fail("cannot write the output");
        free(first);
        free(again);
        free(c.coef);
    }
    if (in != in_end)
        fail("the input has bytes after its last case");
    if (fclose(out) != 0)
        fail("cannot write the output");
    free(data);
    return status;
}
