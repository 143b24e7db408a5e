/*
 * Shared helpers for vigil's cmocka tests: loopback socket pairs, a
 * monotonic clock, a fake clock, and "run the loop until a condition holds
 * or a deadline passes" so no test sleeps a fixed time.
 */
#ifndef VIGIL_TESTUTIL_H
#define VIGIL_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "slack.h"

struct ev_loop;
struct vigil_hub;

/* Monotonic wall time in ms (CLOCK_MONOTONIC). */
uint64_t vt_now_ms(void);

/* A fake clock for vigil_hub_options.clock: returns *(uint64_t *)data. */
uint64_t vt_fake_clock(void *data);

/* Fake-clock time: moves *fake_now by ms, has the hub run what is due at
 * the new time (the hub's tick, vigil__hub_run_due) and runs one
 * non-blocking loop iteration, which delivers the on_close calls that
 * follow. Deadlines then fire at exact fake times; see src/hub.h, "Time". */
void vt_advance(struct ev_loop *loop, struct vigil_hub *hub,
                uint64_t *fake_now, uint64_t ms);

/* Connected TCP pair on 127.0.0.1 with an ephemeral port. Both blocking.
 * Returns 0 or -1. */
int vt_tcp_pair(int *server_fd, int *client_fd);
/* Same on ::1; returns -1 when IPv6 loopback is unavailable. */
int vt_tcp_pair6(int *server_fd, int *client_fd);

/* Blocking connect to 127.0.0.1:port; returns fd or -1. */
int vt_connect_loopback(uint16_t port);

/* Runs the loop until pred(arg) returns non-zero or timeout_ms passes.
 * Returns 1 if pred became true, 0 on timeout. pred may be NULL (just run
 * for timeout_ms). */
int vt_run_until(struct ev_loop *loop, int (*pred)(void *), void *arg,
                 uint32_t timeout_ms);

/* Polls pred(arg) every millisecond until it returns non-zero or
 * timeout_ms passes, running no loop: for conditions other threads make
 * true. Returns 1 if pred became true, 0 on timeout. */
int vt_wait_until(int (*pred)(void *), void *arg, uint32_t timeout_ms);

/* Threads of this process whose name (pthread_setname_np, the kernel's
 * comm) starts with prefix, or all of them for NULL; -1 on error. */
int vt_thread_count(const char *prefix);

/* Non-blocking read of everything available into buf; returns bytes read,
 * 0 on EOF seen (sets *eof), -1 on error (errno). */
long vt_read_avail(int fd, void *buf, size_t cap, int *eof);

/* Blocking-style reads for raw test clients, bounded by timeout_ms:
 * vt_recv_n reads exactly n bytes unless EOF, an error or the deadline
 * comes first, and returns the bytes read; vt_wait_closed discards data
 * until the server's end of the connection and says how it ended. */
size_t vt_recv_n(int fd, void *buf, size_t n, uint32_t timeout_ms);
enum { VT_STILL_OPEN = 0, VT_GOT_FIN = 1, VT_GOT_RST = 2 };
int vt_wait_closed(int fd, uint32_t timeout_ms);

/* Kernel TCP state of fd via TCP_INFO, or -1. */
int vt_tcp_state(int fd);

/* Count of fds open in this process (for leak checks). */
int vt_open_fd_count(void);

/* 1 if this process may create network namespaces (CAP_NET_ADMIN). */
int vt_have_net_admin(void);

/* Prints "SKIP: <why>" and exits 77 (ctest SKIP_RETURN_CODE). */
void vt_skip(const char *why) __attribute__((noreturn));

#endif
