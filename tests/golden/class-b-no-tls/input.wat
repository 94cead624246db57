(module $class-b-no-tls.wasm
  (type (;0;) (func (result i32)))
  (memory (;0;) 2)
  (global $__stack_pointer (;0;) (mut i32) i32.const 65536)
  (export "memory" (memory 0))
  (export "bump" (func $bump))
  (func $bump (;0;) (type 0) (result i32)
    (local i32)
    i32.const 0
    i32.const 0
    i32.load offset=65536
    i32.const 1
    i32.add
    local.tee 0
    i32.store offset=65536
    local.get 0
  )
  (data $.data (;0;) (i32.const 65536) "*\00\00\00")
  (@producers
    (processed-by "Debian clang" "22.1.8 (1~deb12u1)")
  )
  (@custom "target_features" (after data) "\09+\07atomics+\0bbulk-memory+\0fbulk-memory-opt+\16call-indirect-overlong+\0amultivalue+\0fmutable-globals+\13nontrapping-fptoint+\0freference-types+\08sign-ext")
)
