#!/bin/bash
# SPDX-License-Identifier: MIT
# The demo's quick run: every workload through the software TLB and through
# libbtmmu must give identical guest-visible results (exit status 0).
set -euo pipefail
exec "${abs_top_builddir:-.}/examples/btmmu-demo" --quick
