/*
 * Graceful hub shutdown (vigil_hub_shutdown): stop accepting, close every
 * conn gracefully with reason shutdown, abort what is still open at the
 * deadline, then tell the host. Conns finish their graceful close on their
 * own; a 10 ms poll notices when the last one is gone.
 */
#include "close.h"
#include "conn.h"
#include "event.h"
#include "hub.h"
#include "listener.h"

static void emit_shutdown(vigil_hub *hub, const char *detail, uint32_t n) {
  if (!vigil__hub_wants_events(hub)) return;
  vigil_event ev;
  vigil__event_init(&ev, VIGIL_EV_SHUTDOWN, hub, NULL);
  ev.detail = detail;
  ev.count = n;
  vigil__event_send(hub, &ev);
}

static void shutdown_finish(vigil_hub *hub) {
  ev_timer_stop(hub->loop, &hub->shutdown_timer);
  hub->shutting_down = 0;
  emit_shutdown(hub, "done", 0);
  if (hub->shutdown_done) hub->shutdown_done(hub, hub->shutdown_data);
}

static void shutdown_poll_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  vigil_hub *hub = vigil__container_of(w, vigil_hub, shutdown_timer);
  (void)loop;
  (void)revents;
  vigil__hub_enter_loop(hub);
  if (hub->nconns > 0 && vigil__hub_clock(hub) >= hub->shutdown_deadline) {
    while (hub->nconns > 0)
      vigil__conn_close(hub->conns[hub->nconns - 1], VIGIL_REASON_SHUTDOWN,
                        VIGIL__CLOSE_ABORT);
  }
  if (hub->nconns == 0 && hub->shutting_down) {
    vigil__hub_deliver_closed(hub);
    shutdown_finish(hub);
  }
  vigil__hub_leave(hub);
}

int vigil_hub_shutdown(vigil_hub *hub, uint32_t deadline_ms,
                       vigil_shutdown_cb done, void *user_data) {
  if (!hub || hub->free_requested) return VIGIL_EINVAL;
  if (hub->shutting_down) return VIGIL_EEXIST;
  vigil__hub_enter(hub);
  hub->shutting_down = 1;
  hub->shutdown_done = done;
  hub->shutdown_data = user_data;
  vigil__listeners_stop(hub);
  emit_shutdown(hub, "start", hub->nconns);
  /* Iterate backwards: a conn that finishes at once leaves the array. */
  for (uint32_t i = hub->nconns; i > 0; i--) {
    if (i > hub->nconns) continue;
    vigil__conn_close(hub->conns[i - 1], VIGIL_REASON_SHUTDOWN,
                      VIGIL__CLOSE_GRACEFUL);
  }
  ev_timer_init(&hub->shutdown_timer, shutdown_poll_cb, 0.0, 0.01);
  hub->shutdown_deadline = vigil__hub_clock(hub) + deadline_ms;
  ev_timer_start(hub->loop, &hub->shutdown_timer);
  vigil__hub_leave(hub);
  return VIGIL_OK;
}
