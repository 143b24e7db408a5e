/*
 * Kernel-side port filter (INET_DIAG_REQ_BYTECODE), so a census of one
 * port on a machine with many sockets does not copy every socket to user
 * space. The user-space filter in census.c still runs on every record:
 * the bytecode is only a speed-up, and a census without it is correct.
 *
 * The kernel's filter language (net/ipv4/inet_diag.c): a program is a
 * sequence of 4-byte ops {code, yes, no}. Running it, each op jumps
 * forward by `yes` bytes if its condition holds, else by `no`; landing
 * exactly on the end accepts the socket, jumping past it rejects. A port
 * comparison takes two ops, the second carrying the port in its `no`
 * field. The kernel audits a program before use: every op must be on the
 * chain of `yes` jumps from the start, and `no` jumps must land on that
 * chain, on the end, or 4 bytes past it.
 *
 * "port is P1 or P2 or ... Pn" (the layout ss uses for "or"):
 *
 *   [EQ P1 yes=8 no=12][JMP no=rest+4][EQ P2 ...][JMP][...][EQ Pn yes=8 no=12]
 *
 * A hit falls through (yes=8) to its JMP, which skips everything after it
 * to the end: accept. A miss jumps over its JMP (no=12) to the next
 * comparison; the last miss lands 4 bytes past the end: reject.
 */
#include <string.h>

#include "census_internal.h"

#define OP_SIZE ((size_t)sizeof(struct inet_diag_bc_op))
#define CMP_SIZE (2 * OP_SIZE)
#define JMP_SIZE OP_SIZE

static void put_op(unsigned char *p, uint8_t code, uint8_t yes, uint16_t no) {
  struct inet_diag_bc_op op = {.code = code, .yes = yes, .no = no};
  memcpy(p, &op, sizeof op);
}

size_t vigil__census_port_bytecode(const vigil_census_query *q, void *buf,
                                   size_t cap) {
  if (!q || q->nports == 0 || !q->ports) return 0;
  size_t per_port = q->port_match == VIGIL_CENSUS_MATCH_EITHER ? 2 : 1;
  size_t nconds = q->nports * per_port;
  size_t len = nconds * CMP_SIZE + (nconds - 1) * JMP_SIZE;
  /* `no` is 16 bits and jumps at most the whole program. */
  if (len > cap || len + OP_SIZE > UINT16_MAX) return 0;

  unsigned char *p = buf;
  size_t off = 0;
  for (size_t i = 0; i < nconds; i++) {
    uint16_t port = q->ports[i / per_port];
    uint8_t code =
        (per_port == 2 && i % 2) ? INET_DIAG_BC_D_EQ : INET_DIAG_BC_S_EQ;
    put_op(p + off, code, (uint8_t)CMP_SIZE, (uint16_t)(CMP_SIZE + JMP_SIZE));
    put_op(p + off + OP_SIZE, 0, 0, port);
    off += CMP_SIZE;
    if (i + 1 < nconds) {
      size_t rest = len - off - JMP_SIZE; /* bytes after this JMP */
      put_op(p + off, INET_DIAG_BC_JMP, (uint8_t)JMP_SIZE,
             (uint16_t)(rest + JMP_SIZE));
      off += JMP_SIZE;
    }
  }
  return off;
}
