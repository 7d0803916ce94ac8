/* SPDX-License-Identifier: MIT */
/*
 * Size-prefixed argument structs, with the kernel's copy_struct_from_user
 * rules: a caller built against an older, smaller struct gets zeroes for the
 * fields it does not know; a caller with a newer, larger struct is accepted
 * only if the fields we do not know are zero.
 */
#include <errno.h>
#include <string.h>

#include "../internal.h"

int btmmu__copy_args(void *dst, size_t dst_size, const void *src)
{
	size_t src_size, i;

	if (!src)
		return -EFAULT;
	memcpy(&src_size, src, sizeof(src_size));
	if (src_size < sizeof(size_t))
		return -EINVAL;
	if (src_size > BTMMU__ARGS_MAX)
		return -E2BIG; /* garbage: not a struct any version will have */
	memset(dst, 0, dst_size);
	if (src_size <= dst_size) {
		memcpy(dst, src, src_size);
	} else {
		for (i = dst_size; i < src_size; i++) {
			if (((const unsigned char *)src)[i])
				return -E2BIG;
		}
		memcpy(dst, src, dst_size);
	}
	memcpy(dst, &dst_size, sizeof(dst_size));
	return 0;
}

/*
 * Fill a caller's size-prefixed output struct: the fields both sides know,
 * zeroes for the caller's fields we do not know, and size set to the bytes
 * we filled (as sched_getattr does).
 */
int btmmu__check_out(const void *dst)
{
	size_t dst_size;

	if (!dst)
		return -EFAULT;
	memcpy(&dst_size, dst, sizeof(dst_size));
	if (dst_size < sizeof(size_t))
		return -EINVAL;
	return dst_size > BTMMU__ARGS_MAX ? -E2BIG : 0;
}

void btmmu__copy_out(void *dst, const void *src, size_t src_size)
{
	size_t dst_size, n;

	memcpy(&dst_size, dst, sizeof(dst_size));
	n = dst_size < src_size ? dst_size : src_size;
	memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t),
	       n - sizeof(size_t));
	if (dst_size > n)
		memset((char *)dst + n, 0, dst_size - n);
	memcpy(dst, &n, sizeof(n));
}
