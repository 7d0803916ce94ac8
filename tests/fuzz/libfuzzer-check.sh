#!/bin/sh
# SPDX-License-Identifier: MIT
# make check: build the libFuzzer target and check that libFuzzer does not
# eat the library's faults and still reports a real crash (libfuzzer.sh
# check). SKIP (77) without clang's libFuzzer.
exec "${srcdir:-.}/tests/fuzz/libfuzzer.sh" check
