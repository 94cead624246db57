(module
  (type (;0;) (func))
  (type (;1;) (func (result i32)))
  (type (;2;) (func (param i32)))
  (type (;3;) (func (param i32 i32)))
  (import "env" "memory" (memory (;0;) 2 256 shared))
  (table (;0;) 0 0 funcref)
  (global (;0;) (mut i32) i32.const 65472)
  (global (;1;) (mut i32) i32.const 0)
  (global $threadify_tid (;2;) (mut i32) i32.const 0)
  (global $threadify_block (;3;) (mut i32) i32.const 0)
  (export "bump" (func 1))
  (export "memory" (memory 0))
  (export "wasi_thread_start" (func $wasi_thread_start))
  (export "threadify_thread_destroy" (func $threadify_thread_destroy))
  (start $threadify_init)
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
  (func $threadify_out_of_memory (;2;) (type 0)
    unreachable
  )
  (func $threadify_stack_overflow (;3;) (type 0)
    unreachable
  )
  (func $threadify_lock (;4;) (type 0)
    loop ;; label = @1
      i32.const 65476
      i32.const 0
      i32.const 1
      i32.atomic.rmw.cmpxchg
      if ;; label = @2
        i32.const 65476
        i32.const 1
        i64.const -1
        memory.atomic.wait32
        drop
        br 1 (;@1;)
      end
    end
  )
  (func $threadify_unlock (;5;) (type 0)
    i32.const 65476
    i32.const 0
    i32.atomic.store
    i32.const 65476
    i32.const 1
    memory.atomic.notify
    drop
  )
  (func $threadify_alloc_block (;6;) (type 1) (result i32)
    (local i32)
    call $threadify_lock
    i32.const 65480
    i32.atomic.load
    local.tee 0
    if ;; label = @1
      i32.const 65480
      local.get 0
      i32.load
      i32.atomic.store
      call $threadify_unlock
    else
      call $threadify_unlock
      i32.const 17
      memory.grow
      local.tee 0
      i32.const -1
      i32.eq
      if ;; label = @2
        call $threadify_out_of_memory
      end
      local.get 0
      i32.const 16
      i32.shl
      local.set 0
      i32.const 65484
      i32.const 1
      i32.atomic.rmw.add
      drop
    end
    local.get 0
    i32.const 2125315823
    i32.store offset=4
    local.get 0
    global.get $threadify_tid
    i32.store offset=8
    i32.const 65488
    i32.const 1
    i32.atomic.rmw.add
    drop
    local.get 0
  )
  (func $threadify_free_block (;7;) (type 2) (param i32)
    call $threadify_lock
    local.get 0
    i32.const 65480
    i32.atomic.load
    i32.store
    i32.const 65480
    local.get 0
    i32.atomic.store
    call $threadify_unlock
    i32.const 65488
    i32.const -1
    i32.atomic.rmw.add
    drop
  )
  (func $threadify_thread_destroy (;8;) (type 0)
    (local i32)
    global.get $threadify_block
    local.tee 0
    i32.eqz
    if ;; label = @1
      return
    end
    local.get 0
    i32.load offset=4
    i32.const 2125315823
    i32.ne
    if ;; label = @1
      call $threadify_stack_overflow
    end
    i32.const 0
    global.set $threadify_block
    local.get 0
    call $threadify_free_block
  )
  (func $wasi_thread_start (;9;) (type 3) (param i32 i32)
    (local i32 i32 i32 i32)
    local.get 1
    i32.load
    local.set 2
    local.get 1
    i32.load offset=4
    local.set 3
    local.get 0
    global.set $threadify_tid
    i32.const 65500
    i32.const 1
    i32.atomic.rmw.add
    drop
    call $threadify_alloc_block
    local.tee 4
    global.set $threadify_block
    local.get 4
    i32.const 1048592
    i32.add
    global.set 0
    local.get 4
    i32.const 1052672
    i32.add
    local.set 5
    local.get 5
    global.set 1
    local.get 5
    i32.const 0
    i32.const 4
    memory.init 0
    local.get 3
    local.get 2
    call_indirect (type 2)
    call $threadify_thread_destroy
  )
  (func $threadify_init (;10;) (type 0)
    memory.size
    i32.const 1
    i32.lt_u
    if ;; label = @1
      i32.const 1
      memory.size
      i32.sub
      memory.grow
      i32.const -1
      i32.eq
      if ;; label = @2
        call $threadify_out_of_memory
      end
    end
    i32.const 65472
    i32.const 0
    i32.const 1
    i32.atomic.rmw.cmpxchg
    i32.eqz
    if ;; label = @1
      i32.const 65496
      i32.const 1114112
      i32.atomic.store
      i32.const 65492
      i32.const 1414025796
      i32.atomic.store
      i32.const 65472
      i32.const 2
      i32.atomic.store
      i32.const 65472
      i32.const -1
      memory.atomic.notify
      drop
    else
      loop ;; label = @2
        i32.const 65472
        i32.atomic.load
        i32.const 1
        i32.eq
        if ;; label = @3
          i32.const 65472
          i32.const 1
          i64.const -1
          memory.atomic.wait32
          drop
          br 1 (;@2;)
        end
      end
    end
    call 0
  )
  (data (;0;) "\07\00\00\00")
  (data (;1;) "*\00\00\00")
  (@custom "target_features" (after data) "\09+\07atomics+\0bbulk-memory+\0fbulk-memory-opt+\16call-indirect-overlong+\0amultivalue+\0fmutable-globals+\13nontrapping-fptoint+\0freference-types+\08sign-ext")
  (@producers
    (processed-by "threadify" "VERSION")
  )
  (@custom "threadify" (after data) "{\22abi\22:1,\22block_size\22:1114112,\22blocks_from\22:131072,\22class\22:\22A\22,\22control_block\22:65472,\22control_on_stack\22:true,\22functions\22:{\22threadify_alloc_block\22:6,\22threadify_free_block\22:7,\22threadify_init\22:10,\22threadify_lock\22:4,\22threadify_out_of_memory\22:2,\22threadify_stack_overflow\22:3,\22threadify_thread_destroy\22:8,\22threadify_unlock\22:5,\22wasi_thread_start\22:9},\22globals\22:{\22threadify_block\22:3,\22threadify_tid\22:2},\22options\22:{\22allow_non_atomic\22:false,\22max_memory\22:null,\22stack_check\22:false,\22stack_size\22:1048576,\22validate\22:null},\22stack_pointer\22:0,\22stack_size\22:1048576,\22stack_top\22:1048592,\22tdata\22:0,\22tls_align\22:4096,\22tls_base\22:1,\22tls_offset\22:1052672,\22tls_size\22:4,\22version\22:\22VERSION\22}")
)
