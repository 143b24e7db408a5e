#!/usr/bin/env bash
# Regenerates the frame fuzzer's seed corpus in corpus/frame/. Each seed is
# <config byte><seed byte><stream> (see tests/fuzz/fuzz_frame.c): config
# bits 0-1 max_frame (16/64/300/65536), 2-4 stop-after, 5-6 chunk size,
# 7 trim. Frames: magic F7, version 01, type, flags 00, u32 BE length.
set -euo pipefail
out=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/frame
mkdir -p "$out"
seed() { printf "$2" >"$out/$1"; }

hello='\xF7\x01\x01\x00\x00\x00\x00\x05dev-1'
ping0='\xF7\x01\x02\x00\x00\x00\x00\x00'
ping8='\xF7\x01\x02\x00\x00\x00\x00\x08\x00\x00\x01\x8c\x1f\x2e\x3d\x4c'
pong8='\xF7\x01\x03\x00\x00\x00\x00\x08\x00\x00\x01\x8c\x1f\x2e\x3d\x4c'
data16='\xF7\x01\x04\x00\x00\x00\x00\x100123456789abcdef'
bye='\xF7\x01\x05\x00\x00\x00\x00\x07\x00\x07moved'

seed hello       "\x02\x01$hello"
seed ping_empty  "\x00\x02$ping0"
seed ping_token  "\x20\x03$ping8"
seed pong_token  "\x21\x04$pong8"
seed data        "\x41\x05$data16"
seed goodbye     "\x62\x06$bye"
seed stream      "\x2A\x07$hello$ping8$pong8$ping0$data16$bye"
seed http        "\x03\x08GET / HTTP/1.1\r\nHost: x\r\n\r\n"
seed tls         "\x03\x09\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
seed version2    "\x02\x0a\xF7\x02\x02\x00\x00\x00\x00\x00"
seed oversize    "\x00\x0b\xF7\x01\x04\x00\x00\x01\x11\x70"

# A 1000-byte DATA frame read in 64-byte chunks with trimming between.
{
  printf '\xC3\x0c\xF7\x01\x04\x00\x00\x00\x03\xe8'
  head -c 1000 /dev/zero | tr '\0' 'D'
  printf "$ping8"
} >"$out/data_split_trim"
