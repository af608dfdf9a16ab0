/* cli_npy: NumPy .npy files (format versions 1.0, 2.0 and 3.0) for the hltinfer command.
 *
 * Reads the header dict ('descr', 'fortran_order', 'shape') of little-endian or
 * byte-order-free arrays of the numeric types the KServe protocol knows, and writes version 1.0
 * files (header padded to 64 bytes, as NumPy writes them). Hand-written because no C library
 * for .npy is packaged here and the format is a few dozen lines. Used by the hltinfer command
 * (inputs from .npy, --output-dir) and its tests. No shared state: thread-safe. */
#ifndef HLT_CLI_NPY_H
#define HLT_CLI_NPY_H

#include "hltinfer/dtype.h"
#include "hltinfer/status.h"

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_RANK 16

typedef struct npy_array {
    hlt_dtype dtype;
    size_t rank;
    int64_t shape[NPY_MAX_RANK];
    const void *data; /* borrowed from the parsed buffer */
    size_t size;      /* bytes: prod(shape) * element size */
} npy_array_t;

/* Parses a whole .npy file held in buf (len bytes). On HLT_OK *out describes the array and its
 * data points into buf (borrowed: buf must outlive *out). INVALID_ARGUMENT with a message for
 * a bad magic, a malformed header, fortran_order True, a big-endian or unsupported descr, or a
 * data section shorter than the shape needs. */
hlt_status npy_parse(const uint8_t *buf, size_t len, npy_array_t *out, char *err, size_t errlen);

/* The .npy descr of a datatype ("<f4", "|u1", "|b1"), or NULL for BYTES / INVALID. Static. */
const char *npy_descr(hlt_dtype t);

/* Writes a version 1.0 .npy file. Ownership: every argument borrowed. INVALID_ARGUMENT for a
 * datatype .npy cannot hold or a size that does not match the shape; UNKNOWN (with errno's
 * text) when the file cannot be written. */
hlt_status npy_write(const char *path, hlt_dtype dtype, size_t rank, const int64_t *shape,
                     const void *data, size_t size, char *err, size_t errlen);

#endif
