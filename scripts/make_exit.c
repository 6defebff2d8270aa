/* A GNU make function, $(exit CODE), that ends make with CODE.

   GNU make turns any failing recipe into its own exit status 2, so a tool's documented codes (`make monitor`:
   0-6) never reach the shell or the scheduler that ran make. Loaded with make's documented `load` directive
   (GNU make manual, "Loading Dynamic Objects"), this function lets a recipe end make with the tool's code,
   without make's "Error" line. The Makefile compiles it on first use; without a C compiler make keeps its 2. */
#include <stdio.h>
#include <stdlib.h>

#include <gnumake.h>

int plugin_is_GPL_compatible;

static char *func_exit(const char *name, unsigned int argc, char **argv) {
    (void)name;
    (void)argc;
    fflush(NULL);
    exit(atoi(argv[0]));
}

int make_exit_gmk_setup(const gmk_floc *floc) {
    (void)floc;
    gmk_add_function("exit", func_exit, 1, 1, GMK_FUNC_DEFAULT);
    return 1;
}
