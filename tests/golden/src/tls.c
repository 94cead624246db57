/* A golden input: a thread-local, a data variable and an exported function. */
_Thread_local int counter = 7;
int shared_value = 42;

int bump(void) {
    return ++counter + shared_value;
}
