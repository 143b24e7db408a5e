/*
 * The takeover classifier (src/takeover_class.c) on plain numbers: each
 * evidence bit on its own, each threshold at its edge, and the live
 * close's bound.
 */
#include <stdint.h>
#include <string.h>

#include "takeover_class.h"
#include "testutil.h"

/* A healthy idle conn on a 1 ms path: nothing in flight, heard 1 s ago. */
static vigil_tcp_info idle_ti(void) {
  vigil_tcp_info ti;
  memset(&ti, 0, sizeof ti);
  ti.state = VIGIL_TCP_ESTABLISHED;
  ti.rtt_us = 1000;
  ti.rto_us = 201000;
  ti.last_data_sent_ms = 1000;
  ti.last_ack_recv_ms = 1000;
  return ti;
}

static vigil__class_input input(const vigil_tcp_info *ti) {
  vigil__class_input in;
  memset(&in, 0, sizeof in);
  in.ti = ti;
  in.now_ms = 100000;
  in.last_rx_ms = 99000;
  in.drain_timeout_ms = 5000;
  return in;
}

static vigil__class_verdict judge(const vigil__class_input *in) {
  vigil__class_verdict v;
  memset(&v, 0xff, sizeof v);
  vigil__takeover_classify(in, &v);
  return v;
}

static void assert_ghost(const vigil__class_input *in, uint32_t bits) {
  vigil__class_verdict v = judge(in);
  assert_int_equal(v.cls, VIGIL_PEER_GHOST);
  assert_int_equal(v.evidence, bits);
  assert_int_equal(v.drain_ms, 0);
}

static void assert_live(const vigil__class_input *in) {
  vigil__class_verdict v = judge(in);
  assert_int_equal(v.cls, VIGIL_PEER_LIVE);
  assert_int_equal(v.evidence, 0);
}

static void test_no_evidence_is_live(void **state) {
  (void)state;
  vigil_tcp_info ti = idle_ti();
  vigil__class_input in = input(&ti);
  assert_live(&in);
  vigil__class_verdict v = judge(&in);
  assert_int_equal(v.drain_ms, 100); /* 4 x 1 ms < the 100 ms floor */
  /* Unreadable tcp_info: vigil's own state alone, still live. */
  in.ti = NULL;
  assert_live(&in);
}

static void test_retransmitting_unacked_data(void **state) {
  (void)state;
  vigil_tcp_info ti = idle_ti();
  vigil__class_input in = input(&ti);
  ti.unacked = 1;
  ti.retransmits = 1;
  ti.backoff = 1;
  ti.last_data_sent_ms = 10; /* the retransmission itself is recent */
  ti.last_ack_recv_ms = 900;
  assert_ghost(&in, VIGIL_SUSPECT_UNACKED_RETRANS);
  /* Retransmits without anything unacked: an old loss, recovered. */
  ti.unacked = 0;
  assert_live(&in);
}

static void test_unanswered_probes(void **state) {
  (void)state;
  vigil_tcp_info ti = idle_ti();
  vigil__class_input in = input(&ti);
  ti.probes = 1;
  assert_ghost(&in, VIGIL_SUSPECT_PROBES);
}

static void test_ack_overdue_edges(void **state) {
  (void)state;
  vigil_tcp_info ti = idle_ti();
  vigil__class_input in = input(&ti);
  ti.unacked = 1;
  ti.last_ack_recv_ms = 5000; /* no ACK since the send below */
  ti.last_data_sent_ms = 200; /* exactly the 200 ms floor: not yet */
  assert_live(&in);
  ti.last_data_sent_ms = 201;
  assert_ghost(&in, VIGIL_SUSPECT_ACK_SILENCE);
  /* An ACK came after the send: that segment's ACK is merely delayed. */
  ti.last_ack_recv_ms = 150;
  assert_live(&in);
  /* A long path raises the bar: 4 x 80 ms = 320 ms. */
  ti.last_ack_recv_ms = 5000;
  ti.rtt_us = 80000;
  ti.last_data_sent_ms = 320;
  assert_live(&in);
  ti.last_data_sent_ms = 321;
  assert_ghost(&in, VIGIL_SUSPECT_ACK_SILENCE);
  /* Zero window (the persist timer backs off, nothing retransmits): a
   * slow reader, not a gone path. */
  ti.backoff = 3;
  assert_live(&in);
}

static void test_ping_outstanding_edges(void **state) {
  (void)state;
  vigil_tcp_info ti = idle_ti();
  vigil__class_input in = input(&ti);
  in.ping_asked_ms = in.now_ms - 200; /* the floor: not yet */
  assert_live(&in);
  in.ping_asked_ms = in.now_ms - 201;
  assert_ghost(&in, VIGIL_EVIDENCE_PING_OUTSTANDING);
  /* Heard from after the ping: answered. */
  in.last_rx_ms = in.ping_asked_ms + 1;
  assert_live(&in);
  /* Heard from in the very millisecond of the ping: counted as answered
   * (the doubt goes to the live side). */
  in.last_rx_ms = in.ping_asked_ms;
  assert_live(&in);
  /* A 100 ms path: 4 x 100 = 400 ms. */
  in.last_rx_ms = 90000;
  ti.rtt_us = 100000;
  in.ping_asked_ms = in.now_ms - 400;
  assert_live(&in);
  in.ping_asked_ms = in.now_ms - 401;
  assert_ghost(&in, VIGIL_EVIDENCE_PING_OUTSTANDING);
  /* Never asked. */
  in.ping_asked_ms = 0;
  assert_live(&in);
}

static void test_suspected(void **state) {
  (void)state;
  vigil_tcp_info ti = idle_ti();
  vigil__class_input in = input(&ti);
  in.suspected = 1;
  assert_ghost(&in, VIGIL_EVIDENCE_SUSPECTED);
}

/* Silence alone is no evidence: an MQTT client with keep-alive 60 s is
 * silent for up to 60 s, and nothing was asked of it. */
static void test_silence_alone_is_live(void **state) {
  (void)state;
  vigil_tcp_info ti = idle_ti();
  ti.last_data_sent_ms = 59000;
  ti.last_ack_recv_ms = 59000;
  ti.last_data_recv_ms = 59000;
  vigil__class_input in = input(&ti);
  in.last_rx_ms = in.now_ms - 59000;
  assert_live(&in);
}

static void test_bits_combine(void **state) {
  (void)state;
  vigil_tcp_info ti = idle_ti();
  vigil__class_input in = input(&ti);
  ti.unacked = 2;
  ti.retransmits = 3;
  ti.probes = 1;
  in.suspected = 1;
  in.ping_asked_ms = in.now_ms - 5000;
  in.last_rx_ms = in.now_ms - 6000;
  assert_ghost(&in, VIGIL_SUSPECT_UNACKED_RETRANS | VIGIL_SUSPECT_PROBES |
                        VIGIL_EVIDENCE_PING_OUTSTANDING |
                        VIGIL_EVIDENCE_SUSPECTED);
}

static void test_live_bound(void **state) {
  (void)state;
  vigil_tcp_info ti = idle_ti();
  vigil__class_input in = input(&ti);
  ti.rtt_us = 25000; /* 4 x 25 ms = the floor */
  assert_int_equal(judge(&in).drain_ms, 100);
  ti.rtt_us = 25001; /* rounded up */
  assert_int_equal(judge(&in).drain_ms, 101);
  ti.rtt_us = 2000000; /* 8 s, capped by drain_timeout */
  assert_int_equal(judge(&in).drain_ms, 5000);
  in.drain_timeout_ms = 50; /* a tighter policy keeps its own */
  ti.rtt_us = 1000;
  assert_int_equal(judge(&in).drain_ms, 50);
  in.drain_timeout_ms = 0;
  assert_int_equal(judge(&in).drain_ms, 0);
  in.ti = NULL; /* no RTT known: the floor */
  in.drain_timeout_ms = 5000;
  assert_int_equal(judge(&in).drain_ms, 100);
}

static void test_clock_edges(void **state) {
  (void)state;
  vigil__class_input in = input(NULL);
  /* A stamp "in the future" (same tick, truncation) is no silence. */
  in.last_rx_ms = in.now_ms + 1;
  in.ping_asked_ms = in.now_ms + 2;
  assert_live(&in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_evidence_is_live),
      cmocka_unit_test(test_retransmitting_unacked_data),
      cmocka_unit_test(test_unanswered_probes),
      cmocka_unit_test(test_ack_overdue_edges),
      cmocka_unit_test(test_ping_outstanding_edges),
      cmocka_unit_test(test_suspected),
      cmocka_unit_test(test_silence_alone_is_live),
      cmocka_unit_test(test_bits_combine),
      cmocka_unit_test(test_live_bound),
      cmocka_unit_test(test_clock_edges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
