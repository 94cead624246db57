  (func $threadify_out_of_memory (type 7)
    unreachable
  )
  (func $threadify_stack_overflow (type 7)
    unreachable
  )
  (func $threadify_lock (type 7)
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
  (func $threadify_unlock (type 7)
    i32.const 65476
    i32.const 0
    i32.atomic.store
    i32.const 65476
    i32.const 1
    memory.atomic.notify
    drop
  )
  (func $threadify_alloc_block (type 8) (result i32)
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
  (func $threadify_free_block (type 0) (param i32)
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
  (func $threadify_thread_destroy (type 7)
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
  (func $wasi_thread_start (type 4) (param i32 i32)
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
    i32.const 1128
    memory.init 0
    local.get 3
    local.get 2
    call_indirect (type 0)
    call $threadify_thread_destroy
  )
  (func $threadify_init (type 7)
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
      i32.const 65536
      i32.const 0
      i32.const 1128
      memory.init 0
      i32.const 66672
      i32.const 0
      i32.const 936
      memory.init 1
      data.drop 1
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
  )
