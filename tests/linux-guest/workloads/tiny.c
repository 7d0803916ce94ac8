/* A tiny static program for the fork+exec workload: no libc, exits with a
 * code derived from argv[1]. Built with -nostdlib. */
static int tiny_main(int argc, char **argv)
{
    unsigned v = 0;
    if (argc > 1)
        for (const char *p = argv[1]; *p >= '0' && *p <= '9'; p++)
            v = v * 10 + (unsigned)(*p - '0');
    return (int)((v * 7u + 3u) % 101u); /* never 127 (exec failure) */
}

__attribute__((noreturn, used)) static void tiny_start_c(int *sp)
{
    int rc = tiny_main(sp[0], (char **)(sp + 1));
    for (;;)
        __asm__ volatile("int $0x80" : : "a"(252), "b"(rc)); /* exit_group */
}

__asm__(".text\n.globl _start\n_start:\n"
        "  mov %esp, %eax\n"
        "  and $-16, %esp\n"
        "  sub $12, %esp\n"
        "  push %eax\n"
        "  call tiny_start_c\n"
        "  hlt\n");
