#!/bin/busybox sh
# shellcheck shell=dash disable=SC2013 # word splitting of /proc/cmdline is intended
# /init of the benchmark initramfs (run by the guest kernel as PID 1).
# Kernel command line:
#   btmmu.run=all|boot|NAME[,NAME...]   workloads to run (default all; boot = none)
#   btmmu.size=full|quick               size preset passed to each workload
# Output markers (matched anywhere in a line by run.sh):
#   @@BTMMU-INIT, @@BTMMU-BEGIN NAME, @@BTMMU-SUM, @@BTMMU-TIME,
#   @@BTMMU-END NAME rc=N, @@BTMMU-DONE ok=N fail=N
/bin/busybox --install -s /bin
export PATH=/bin:/w
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
up() { cut -d' ' -f1 /proc/uptime; }
echo "@@BTMMU-INIT uptime=$(up) kernel=$(uname -r) cpus=$(nproc) memtotal_kb=$(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)"

run=all
size=full
for arg in $(cat /proc/cmdline); do
    case $arg in
    btmmu.run=*) run=${arg#*=} ;;
    btmmu.size=*) size=${arg#*=} ;;
    esac
done
[ "$run" = all ] && run=$(cat /etc/btmmu-workloads)

ok=0
fail=0
for w in $(echo "$run" | tr , ' '); do
    [ "$w" = boot ] && continue
    echo "@@BTMMU-BEGIN $w uptime=$(up)"
    if [ -x "/w/$w" ] && [ "$w" != tiny ]; then
        "/w/$w" "$size"
        rc=$?
    else
        echo "unknown workload: $w"
        rc=127
    fi
    echo "@@BTMMU-END $w rc=$rc uptime=$(up)"
    if [ "$rc" = 0 ]; then ok=$((ok + 1)); else fail=$((fail + 1)); fi
done

# Warnings are below the console log level: report them from the ring buffer.
dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|segfault|general protection' | sed 's/^/@@BTMMU-DMESG /'
echo "@@BTMMU-DONE ok=$ok fail=$fail uptime=$(up)"
sync
poweroff -f
