/* xrt_device: XRT environment, device discovery and the xclbin each card holds.
 *
 * XRT aborts the process (an exception escapes its C API) when XILINX_XRT is unset, when
 * $XILINX_XRT/lib lacks the shim library of the selected mode, or when XCL_EMULATION_MODE names
 * no mode. xrt_device_probe checks all of that before the first xrt* call, and on Debian's
 * packages (libraries in the multiarch directory, no XILINX_XRT) sets XILINX_XRT to a private
 * folder whose lib/ links to them. A missing runtime or card is then "0 devices" and a reason.
 *
 * A card holds one xclbin at a time: xrt_device_acquire loads a model's xclbin unless the card
 * already holds the same one (same UUID), and refuses a different one while another model uses
 * the card. Devices are process-wide (XRT's are too); a mutex guards the table, so every
 * function here is thread-safe, except that xrt_device_probe must run before other threads read
 * the environment (the registry probes once, at server start-up). */
#ifndef HLT_XRT_DEVICE_H
#define HLT_XRT_DEVICE_H

#include "hltinfer/status.h"

#include <stddef.h>
#include <stdint.h>

#define XRT_MAX_DEVICES 16

typedef struct xrt_dev xrt_dev_t;

/* Prepares the environment (once per process; later calls return the first answer) and counts
 * devices. 0 with a reason when XRT or a device is absent. Never aborts. */
int xrt_device_probe(char *reason, size_t len);

/* "XRT noop emulation" or "Xilinx FPGA #0 (XRT)". */
void xrt_device_name(int idx, char *buf, size_t len);

/* Opens device idx (shared) and makes it hold the xclbin at path, whose UUID is uuid (read by
 * xrt_xclbin_describe); model names the user for messages. On success *out is owned by the
 * caller (xrt_device_release). UNAVAILABLE when the device cannot be opened or holds another
 * model's xclbin; INVALID_ARGUMENT when XRT rejects the xclbin. */
hlt_status xrt_device_acquire(int idx, const char *path, const uint8_t uuid[16], const char *model,
                              xrt_dev_t **out, char *err, size_t errlen);
/* Drops one user; the device closes with its last user. Accepts NULL. */
void xrt_device_release(xrt_dev_t *d);
/* The device's xrtDeviceHandle (borrowed; valid until release). */
void *xrt_device_handle(const xrt_dev_t *d);

#endif
