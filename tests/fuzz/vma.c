/* SPDX-License-Identifier: MIT */
/*
 * Making the kernel refuse host mappings for real: one anonymous mapping
 * with every other page given another protection, so that each page is a
 * VMA of its own, takes most of vm.max_map_count. The library, opened with
 * a budget larger than what is left, then meets ENOMEM from mmap() and
 * mprotect() inside its own calls: installs, unmaps and protections that
 * need to split a mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

/* Lines of /proc/self/maps: the VMAs of the process (read without stdio). */
long fz_vma_count(void)
{
	char buf[65536];
	long n = 0;
	ssize_t r;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		ssize_t i;

		for (i = 0; i < r; i++)
			n += buf[i] == '\n';
	}
	close(fd);
	return n;
}

long fz_max_map_count(void)
{
	char buf[32];
	ssize_t r;
	int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return -EIO;
	buf[r] = 0;
	return strtol(buf, NULL, 10);
}

/*
 * The hog is one mapping of as many pages as vm.max_map_count; splitting
 * page 2i+1 off (mprotect to read-only) costs two VMAs, merging it back
 * returns them.
 */
static int hog_split(struct fz_hog *h, long page, long k, int prot)
{
	return mprotect((char *)h->base + (2 * k + 1) * page, (size_t)page, prot);
}

int fz_hog_adjust(struct fz_hog *h, long left)
{
	long page = sysconf(_SC_PAGESIZE), max = fz_max_map_count(), used = fz_vma_count();
	long want;

	if (max < 0)
		return (int)max;
	if (used < 0)
		return (int)used;
	if (!h->base) {
		h->len = (size_t)(max + 4) * (size_t)page;
		h->base = mmap(NULL, h->len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (h->base == MAP_FAILED) {
			h->base = NULL;
			return -errno;
		}
		h->taken = 0;
		used++;
	}
	/* Splits to add (> 0) or to merge back (< 0) to leave `left` VMAs free. */
	want = (max - used - left) / 2;
	while (want > 0 && 2 * (h->taken + 1) + 1 < (long)(h->len / (size_t)page)) {
		if (hog_split(h, page, h->taken, PROT_READ))
			break;
		h->taken++;
		want--;
	}
	while (want < 0 && h->taken > 0) {
		if (hog_split(h, page, h->taken - 1, PROT_READ | PROT_WRITE))
			break;
		h->taken--;
		want++;
	}
	return 0;
}

int fz_hog_fill(struct fz_hog *h, long left)
{
	return fz_hog_adjust(h, left);
}

void fz_hog_release(struct fz_hog *h)
{
	if (h->base)
		munmap(h->base, h->len);
	h->base = NULL;
	h->taken = 0;
}
