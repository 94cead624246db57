(module
  (type (;0;) (func (result i32)))
  (memory (;0;) 2)
  (global (;0;) (mut i32) i32.const 65536)
  (global (;1;) i32 i32.const 65536)
  (export "memory" (memory 0))
  (export "bump" (func 0))
  (func (;0;) (type 0) (result i32)
    (local i32)
    global.get 1
    i32.const 0
    i32.add
    local.tee 0
    local.get 0
    i32.load
    i32.const 1
    i32.add
    local.tee 0
    i32.store
    i32.const 0
    i32.load offset=65540
    local.get 0
    i32.add
  )
  (data (;0;) (i32.const 65536) "\07\00\00\00")
  (data (;1;) (i32.const 65540) "*\00\00\00")
  (@custom "target_features" (after data) "\09+\07atomics+\0bbulk-memory+\0fbulk-memory-opt+\16call-indirect-overlong+\0amultivalue+\0fmutable-globals+\13nontrapping-fptoint+\0freference-types+\08sign-ext")
)
