/* Small freestanding program with TLS, atomics and bulk memory: the shape lld gives
   threadify's real inputs. Built by build.sh into tls_atomics*.wasm (committed). */
#include <stdint.h>

static _Thread_local int counter = 7;
static _Thread_local char scratch[64];
static int shared_total;
const char greeting[] = "hello from the data segment";

__attribute__((noinline)) static int bump(int by) {
    counter += by;
    scratch[by & 63] = (char)by;
    return __atomic_add_fetch(&shared_total, by, __ATOMIC_SEQ_CST);
}

__attribute__((export_name("run"))) int run(int n) {
    int acc = 0;
    for (int i = 0; i < n; i++) {
        acc += bump(i) + greeting[i % (int)sizeof(greeting)];
    }
    __builtin_memset(scratch, acc & 0xff, sizeof scratch);
    return acc + counter;
}

__attribute__((export_name("wait_for"))) int wait_for(int expected) {
    return __builtin_wasm_memory_atomic_wait32(&shared_total, expected, 1000);
}
