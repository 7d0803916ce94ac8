/* SPDX-License-Identifier: MIT */
/*
 * A TCG plugin for make check-qemu: count the memory callbacks of guest
 * accesses whose virtual address lies in [lo, hi), loads and stores apart,
 * and print them at exit ("plugin-count: loads N stores M"). A translator
 * that re-executes an instruction on a slow path must not call a plugin
 * back twice for the accesses the first try already made.
 *
 *   -plugin plugin-count.so,lo=0x6abc0000,hi=0x6abc1000
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t lo, hi;
static uint64_t loads, stores; /* under the lock: vCPUs may run in parallel */
static GMutex lock;

static void mem_cb(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
	(void)vcpu;
	(void)udata;
	if (vaddr < lo || vaddr >= hi)
		return;
	g_mutex_lock(&lock);
	if (qemu_plugin_mem_is_store(info))
		stores++;
	else
		loads++;
	g_mutex_unlock(&lock);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t i, n = qemu_plugin_tb_n_insns(tb);

	(void)id;
	for (i = 0; i < n; i++)
		qemu_plugin_register_vcpu_mem_cb(qemu_plugin_tb_get_insn(tb, i), mem_cb,
						 QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
	char buf[128];

	(void)id;
	(void)p;
	snprintf(buf, sizeof(buf), "plugin-count: loads %" PRIu64 " stores %" PRIu64 "\n", loads,
		 stores);
	qemu_plugin_outs(buf);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
					   char **argv)
{
	int i;

	(void)info;
	for (i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "lo=", 3))
			lo = strtoull(argv[i] + 3, NULL, 0);
		else if (!strncmp(argv[i], "hi=", 3))
			hi = strtoull(argv[i] + 3, NULL, 0);
		else {
			fprintf(stderr, "plugin-count: unknown argument %s\n", argv[i]);
			return -1;
		}
	}
	if (lo >= hi) {
		fprintf(stderr, "plugin-count: needs lo=ADDR,hi=ADDR with lo < hi\n");
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
