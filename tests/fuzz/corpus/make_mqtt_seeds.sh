#!/usr/bin/env bash
# Regenerates the MQTT codec fuzzer's seed corpus in corpus/mqtt/. Each
# seed is <config byte><k><k chunk-length bytes><stream> (see
# tests/fuzz/fuzz_mqtt.c): config bits 0-1 max_packet (16/300/256K/max),
# 2-4 stop-after, 5 free the parser at the stop; chunk i is len[i%k]+1
# bytes, k = 0 feeds byte by byte.
set -euo pipefail
out=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/mqtt
mkdir -p "$out"
seed() { printf "$2" >"$out/$1"; }

# CONNECT "MQTT" level 4, clean session, keep-alive 60, id "dev-1"
connect='\x10\x11\x00\x04MQTT\x04\x02\x00\x3c\x00\x05dev-1'
# ... with a user name
connect_user='\x10\x17\x00\x04MQTT\x04\x82\x00\x3c\x00\x05dev-1\x00\x04user'
# ... with Will (QoS 1, topic a/b), user name and password
connect_will='\x10\x20\x00\x04MQTT\x04\xce\x00\x3c\x00\x05dev-1\x00\x03a/b\x00\x02xx\x00\x01u\x00\x01p'
# MQTT 3.1 ("MQIsdp", level 3): refused with CONNACK 0x01
connect_31='\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01x'
# empty client id with clean session 0: identifier rejected
connect_noid='\x10\x0c\x00\x04MQTT\x04\x00\x00\x3c\x00\x00'
pub0='\x30\x0a\x00\x03a/bhello'
pub1='\x32\x0c\x00\x03a/b\x00\x01hello'
pub2='\x3d\x0c\x00\x03a/b\x00\x02hello'
sub='\x82\x0c\x00\x01\x00\x03a/+\x01\x00\x01#\x00'
sub1='\x82\x08\x00\x07\x00\x03a/b\x02'
unsub='\xa2\x07\x00\x02\x00\x03a/+'
acks='\x40\x02\x00\x01\x50\x02\x00\x02\x62\x02\x00\x02\x70\x02\x00\x02\xb0\x02\x00\x03'
connack='\x20\x02\x00\x00'
suback='\x90\x03\x00\x01\x00'
ping='\xc0\x00'
pingresp='\xd0\x00'
disconnect='\xe0\x00'

seed connect        "\x02\x00$connect"
seed connect_user   "\x02\x01\x03$connect_user"
seed connect_will   "\x02\x02\x00\x04$connect_will"
seed connect_31     "\x02\x00$connect_31"
seed connect_noid   "\x02\x00$connect_noid"
seed publish        "\x01\x03\x01\x07\xff$pub0$pub1$pub2"
seed subscribe      "\x02\x01\x05$sub$sub1$unsub"
seed acks           "\x06\x02\x02\x00$acks$connack$suback$pingresp"
seed session        "\x2e\x03\x10\x01\x04$connect$sub$pub0$pub1$ping$unsub$disconnect"
seed reserved_type  "\x02\x00$connect\x00\x00"
seed bad_flags      "\x02\x00$connect\x80\x0c\x00\x01\x00\x03a/+\x01"
seed qos3           "\x02\x00\x36\x02\x00\x01"
seed varint_5       "\x03\x00\x30\xff\xff\xff\xff\x7f"
seed varint_max     "\x03\x01\x00\x30\xff\xff\xff\x7f\x00\x01t"
seed too_big        "\x00\x00\x30\x80\x01\x00\x01t"
# Client ids at the control-character boundaries: NBSP (U+00A0) is
# accepted, NEL (U+0085) and DEL are refused.
seed connect_nbsp   '\x02\x00\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04a\xc2\xa0b'
seed connect_nel    '\x02\x00\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04a\xc2\x85b'
seed connect_del    '\x02\x00\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03a\x7fb'
# Wildcard matching: '#' also matches the parent level, '+' an empty
# level, and neither matches a '$' topic from the first level.
wild_sub='\x82\x1e\x00\x09\x00\x01#\x00\x00\x03+/x\x00\x00\x03a/#\x00\x00\x09sport/+/p\x00'
wild_pub='\x30\x08\x00\x06$SYS/x\x30\x03\x00\x01a\x30\x07\x00\x05a/b/c\x30\x0a\x00\x08sport//p\x30\x05\x00\x03x/x'
seed wildcards      "\x02\x00$connect$wild_sub$wild_pub"
seed http           "\x02\x04GET / HTTP/1.1\r\nHost: x\r\n\r\n"

# A 200-byte PUBLISH (2-byte Remaining Length) split in 64-byte chunks.
{
  printf '\x01\x01\x3f\x30\xc8\x01\x00\x05big/t'
  head -c 193 /dev/zero | tr '\0' 'P'
  printf "$ping"
} >"$out/publish_split"

# Inputs that once found a defect, replayed by every smoke run.
# A body-less PUBLISH: the decoders did NULL + 0 (UBSan).
seed regress_empty_body '\x02\x00\x10\x0f\x00\x06MQIsdp\x03\x01\x00\x00\x00\x2c\x00\x3c\x00\x3c\x00'
