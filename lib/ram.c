/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM: guest-physical ranges backed by a file descriptor. Guest data
 * lives only here; shadow entries are mappings of this fd, so dropping them
 * never loses data.
 *
 * Each range also carries the protect() state: per 1 KiB granule, the
 * rights denied to every alias (0: none). The array is an anonymous mapping
 * the kernel fills lazily, so it costs nothing until something is protected.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static int ram_validate(struct btmmu *ctx, const struct btmmu_ram_args *a)
{
	uint64_t hp = UINT64_C(1) << ctx->host_page_shift;
	struct stat st;

	if (a->flags)
		return -EINVAL;
	if (!a->len || (a->len & (hp - 1)) || (a->gpa & (hp - 1)) || (a->offset & (hp - 1)))
		return -EINVAL;
	if (a->gpa + a->len < a->gpa || a->offset + a->len < a->offset)
		return -EINVAL;
	if (a->fd == -1)
		return a->offset ? -EINVAL : 0;
	if (a->fd < 0 || fstat(a->fd, &st))
		return -EBADF;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size < a->offset + a->len)
		return -EINVAL;
	return 0;
}

BTMMU_EXPORT int btmmu_ram_create(struct btmmu *ctx, const struct btmmu_ram_args *args,
				  struct btmmu_ram **ramp)
{
	struct btmmu_ram_args a;
	struct btmmu_ram *ram, *other;
	int ret;

	ret = btmmu__create_args(ctx, ramp, &a, sizeof(a), args);
	if (ret)
		return ret;
	ret = ram_validate(ctx, &a);
	if (ret)
		return ret;

	ram = calloc(1, sizeof(*ram));
	if (!ram)
		return -ENOMEM;
	ram->ctx = ctx;
	ram->gpa = a.gpa;
	ram->len = a.len;
	if (a.fd == -1) {
		ram->fd = memfd_create("btmmu-guest-ram", MFD_CLOEXEC);
		if (ram->fd < 0) {
			ret = -errno;
			goto err_free;
		}
		if (ftruncate(ram->fd, (off_t)a.len)) {
			ret = -errno;
			goto err_close;
		}
		ram->offset = 0;
	} else {
		ram->fd = fcntl(a.fd, F_DUPFD_CLOEXEC, 0);
		if (ram->fd < 0) {
			ret = -errno;
			goto err_free;
		}
		ram->offset = a.offset;
	}
	ram->host =
		mmap(NULL, a.len, PROT_READ | PROT_WRITE, MAP_SHARED, ram->fd, (off_t)ram->offset);
	if (ram->host == MAP_FAILED) {
		ret = -errno;
		goto err_close;
	}
	ram->deny = mmap(NULL, a.len >> BTMMU_GRANULE_SHIFT, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram->deny == MAP_FAILED) {
		ret = -errno;
		goto err_unmap;
	}

	pthread_mutex_lock(&ctx->admin);
	if (btmmu__lock_mine(&ctx->lock)) {
		pthread_mutex_unlock(&ctx->admin);
		ret = -EDEADLK;
		goto err_ceil;
	}
	cds_list_for_each_entry(other, &ctx->rams, node) {
		if (a.gpa < other->gpa + other->len && other->gpa < a.gpa + a.len) {
			btmmu__unlock(&ctx->lock);
			pthread_mutex_unlock(&ctx->admin);
			ret = -EEXIST;
			goto err_ceil;
		}
	}
	cds_list_add_tail(&ram->node, &ctx->rams);
	ctx->mappings += 2; /* the host view and the deny array */
	btmmu__unlock(&ctx->lock);
	pthread_mutex_unlock(&ctx->admin);
	*ramp = ram;
	return 0;

err_ceil:
	munmap(ram->deny, a.len >> BTMMU_GRANULE_SHIFT);
err_unmap:
	munmap(ram->host, a.len);
err_close:
	close(ram->fd);
err_free:
	free(ram);
	return ret;
}

BTMMU_EXPORT int btmmu_ram_destroy(struct btmmu_ram *ram)
{
	struct btmmu *ctx;

	if (!ram)
		return -EINVAL;
	if (btmmu__in_callback())
		return -EDEADLK;
	ctx = ram->ctx;
	pthread_mutex_lock(&ctx->admin);
	if (btmmu__lock_mine(&ctx->lock)) {
		pthread_mutex_unlock(&ctx->admin);
		return -EDEADLK;
	}
	btmmu__wait_tearing(ctx);
	btmmu__ram_drop_entries(ctx, ram);
	cds_list_del(&ram->node);
	ctx->mappings -= 2;
	btmmu__unlock(&ctx->lock);
	pthread_mutex_unlock(&ctx->admin);

	munmap(ram->deny, ram->len >> BTMMU_GRANULE_SHIFT);
	munmap(ram->host, ram->len);
	close(ram->fd);
	free(ram);
	return 0;
}

BTMMU_EXPORT int btmmu_ram_host(const struct btmmu_ram *ram, void **hostp)
{
	if (!ram)
		return -EINVAL;
	if (btmmu__dead(ram->ctx))
		return -EOWNERDEAD;
	if (!hostp)
		return -EFAULT;
	*hostp = ram->host;
	return 0;
}
