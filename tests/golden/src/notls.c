/* A golden input without thread-locals: a data variable and an exported function. */
int shared_value = 42;

int bump(void) {
    return ++shared_value;
}
