/* Constants shared by the C and assembly parts of the btmmu test guest. */
#ifndef BTMMU_GUEST_ASMDEFS_H
#define BTMMU_GUEST_ASMDEFS_H

#ifdef __x86_64__
#define RW      8
#define KCS     0x08    /* 64-bit kernel code */
#define KDS     0x10    /* kernel data (flat, B=1) */
#define KCS32   0x18    /* 32-bit compatibility-mode kernel code */
#define UCS32   0x23    /* 32-bit compatibility-mode user code */
#define UDS     0x2b    /* user data */
#define UCS     0x33    /* 64-bit user code */
#define TSS_SEL 0x38
#else
#define RW      4
#define KCS     0x08
#define KDS     0x10
#define UCS     0x1b
#define UDS     0x23
#define TSS_SEL 0x28
#endif

/* offsets into struct regs (see guest.h) */
#define R_AX  (0 * RW)
#define R_BX  (1 * RW)
#define R_CX  (2 * RW)
#define R_DX  (3 * RW)
#define R_SI  (4 * RW)
#define R_DI  (5 * RW)
#define R_BP  (6 * RW)
#define R_SP  (7 * RW)
#define R_FL  (8 * RW)
#define R_IP  (9 * RW)
#define R_R8  (10 * RW)
#define R_R9  (11 * RW)
#define R_R10 (12 * RW)
#define R_R11 (13 * RW)
#define R_R12 (14 * RW)
#define R_R13 (15 * RW)
#define R_R14 (16 * RW)
#define R_R15 (17 * RW)

#define SNIP_END_VEC 0x80       /* snippets end with "int $0x80" */

#endif
