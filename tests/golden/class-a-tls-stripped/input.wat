(module
  (type (;0;) (func))
  (type (;1;) (func (result i32)))
  (import "env" "memory" (memory (;0;) 2 256 shared))
  (global (;0;) (mut i32) i32.const 65536)
  (global (;1;) (mut i32) i32.const 0)
  (export "bump" (func 1))
  (start 0)
  (func (;0;) (type 0)
    block ;; label = @1
      block ;; label = @2
        block ;; label = @3
          i32.const 65544
          i32.const 0
          i32.const 1
          i32.atomic.rmw.cmpxchg
          br_table 0 (;@3;) 1 (;@2;) 2 (;@1;)
        end
        i32.const 65536
        i32.const 65536
        global.set 1
        i32.const 0
        i32.const 4
        memory.init 0
        i32.const 65540
        i32.const 0
        i32.const 4
        memory.init 1
        i32.const 65544
        i32.const 2
        i32.atomic.store
        i32.const 65544
        i32.const -1
        memory.atomic.notify
        drop
        br 1 (;@1;)
      end
      i32.const 65544
      i32.const 1
      i64.const -1
      memory.atomic.wait32
      drop
    end
    data.drop 1
  )
  (func (;1;) (type 1) (result i32)
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
  (data (;0;) "\07\00\00\00")
  (data (;1;) "*\00\00\00")
  (@custom "target_features" (after data) "\09+\07atomics+\0bbulk-memory+\0fbulk-memory-opt+\16call-indirect-overlong+\0amultivalue+\0fmutable-globals+\13nontrapping-fptoint+\0freference-types+\08sign-ext")
)
