"""The NumPy optimizer classes by algorithm name, as tests/twin.py names the algorithms.

Kept out of conftest.py, which must import without fastadam (a test copies it).
"""

import fastadam

OPTIMIZER_CLASSES = {
    "adam": fastadam.Adam,
    "sgd": fastadam.SGD,
    "rmsprop": fastadam.RMSprop,
    "adagrad": fastadam.Adagrad,
    "adamax": fastadam.Adamax,
    "lion": fastadam.Lion,
}
