// Empty: the declarations of include/libfuzzer.h are defined by libFuzzer's runtime.
