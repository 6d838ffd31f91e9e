/* trustedge.hashing._speedups: the C hot loop for blob hashing.
 * Placeholder module so the build path exists; the hashing work fills it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "trustedge.hashing._speedups",
    "C implementation of trustedge blob hashing.", -1, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&speedups_module); }
