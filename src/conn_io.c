/*
 * A conn's I/O: the io watcher, the read loop, flushing queued output and
 * sending. Every byte goes through the conn's transport (TCP or TLS) and
 * every received byte to its protocol (raw or frames); failures are the
 * transport's to classify (it closes the conn through the close machine).
 *
 * Hot path: a read costs one transport call, one protocol call and the
 * activity stamp (a timestamp and cleared bits, conn.h); nothing touches
 * the timing wheel or the heap.
 */
#include <errno.h>

#include "close.h"
#include "conn.h"
#include "conn_io.h"
#include "hub.h"
#include "outqueue.h"
#include "transport.h"

int vigil__conn_flush(vigil_conn *c) {
  int had = c->outq.queued > 0;
  int r = vigil__conn_transport(c)->write_queue(c);
  if (r < 0) return -1;
  if (c->outq.queued == 0 && c->state == VIGIL_CONN_FLUSHING && (had || r)) {
    vigil__conn_flushed(c);
    return c->state == VIGIL_CONN_CLOSED ? -1 : 0;
  }
  vigil__conn_update_io(c);
  return 0;
}

/* Reads until the transport has nothing more, a budget of reads, the
 * peer's end or an error; bytes go to the protocol, or are discarded
 * while closing: then they are read only so the kernel never answers our
 * close with RST, and count as life. */
static void read_input(vigil_conn *c) {
  vigil_hub *hub = c->hub;
  const vigil__transport *tp = vigil__conn_transport(c);
  for (unsigned i = 0; i < tp->reads_per_event; i++) {
    ssize_t n = tp->read(c, hub->rbuf, VIGIL__READ_BUF);
    if (n > 0) {
      if (!vigil__closing(c))
        c->hooks->proto->on_bytes(c, hub->rbuf, (size_t)n);
      /* DRAINING: from here on the socket is read as raw TCP. */
      if (c->state == VIGIL_CONN_CLOSED || c->state == VIGIL_CONN_DRAINING ||
          hub->free_requested)
        return;
      if (tp->short_read_drains && (size_t)n < VIGIL__READ_BUF) return;
      continue;
    }
    if (n == 0) vigil__conn_peer_fin(c);
    return; /* VIGIL__IO_AGAIN, or VIGIL__IO_CLOSED: c closed */
  }
  /* Bytes left inside the transport never make the fd readable again:
   * come back on the next loop iteration. */
  if (tp->pending && tp->pending(c)) ev_feed_event(hub->loop, &c->io, EV_READ);
}

/* 1 once nothing more may happen on c in this callback. */
static int io_done(const vigil_conn *c) {
  return c->state == VIGIL_CONN_CLOSED || c->hub->free_requested;
}

void vigil__conn_io_cb(struct ev_loop *loop, ev_io *w, int revents) {
  vigil_conn *c = vigil__container_of(w, vigil_conn, io);
  vigil_hub *hub = c->hub;
  (void)loop;
  vigil__hub_enter_loop(hub);
  const vigil__transport *tp = vigil__conn_transport(c);
  int work = tp->events ? tp->events(c, revents) : revents;
  if ((work & EV_WRITE) && !io_done(c)) vigil__conn_flush(c);
  /* After the peer's FIN (or close_notify) there is nothing to read. */
  if ((work & EV_READ) && !io_done(c) && !(c->flags & VIGIL__F_PEER_FIN))
    read_input(c);
  vigil__hub_leave(hub);
}

int vigil__conn_check_send(vigil_conn *c, size_t len) {
  if (c->flags & VIGIL__F_WATCH_ONLY) return VIGIL_ESTATE;
  if (vigil__closing(c) || c->hub->free_requested) return VIGIL_ECLOSED;
  /* Written so that no sum can wrap: queued never exceeds the limit. */
  size_t limit = c->policy->output_limit;
  if (len <= limit && c->outq.queued <= limit - len) return VIGIL_OK;
  if (c->policy->overflow_action == VIGIL_OVERFLOW_CLOSE)
    vigil__conn_close(c, VIGIL_REASON_OUTPUT_OVERFLOW, VIGIL__CLOSE_ABORT);
  return VIGIL_EOVERFLOW;
}

int vigil__conn_send(vigil_conn *c, const void *data, size_t len) {
  int rc = vigil__conn_check_send(c, len);
  if (rc != VIGIL_OK || len == 0) return rc;
  ssize_t w = c->tp->send(c, data, len);
  if (w < 0) return (int)w;
  size_t off = (size_t)w;
  if (off == len) return VIGIL_OK;
  /* After a TLS WANT_WRITE the retry must present these same bytes: they
   * become the queue's head. */
  if (vigil__outq_append(&c->outq, (const char *)data + off, len - off) !=
      VIGIL_OK) {
    /* Part of the message may be on the wire: the stream is broken. */
    vigil__conn_fail(c, ENOMEM);
    return VIGIL_ENOMEM;
  }
  vigil__conn_update_io(c);
  return VIGIL_OK;
}
