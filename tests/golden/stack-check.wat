  (func $recurse (type 3) (param i32) (result i32)
    (local i32 i32 i32 i32 i32)
    global.get $__stack_pointer
    i32.const 256
    i32.sub
    local.tee 1
    global.set $__stack_pointer
    global.get $__stack_pointer
    global.get $threadify_stack_low
    i32.const 128
    i32.add
    i32.lt_u
    global.get $__stack_pointer
    global.get $threadify_stack_high
    i32.gt_u
    i32.or
    if ;; label = @1
      call $threadify_stack_overflow
    end
    i32.const 0
    local.set 2
    loop ;; label = @1
      local.get 1
      local.get 2
      i32.add
      local.tee 3
      local.get 0
      local.get 2
      i32.add
      local.tee 4
      i32.store8
      local.get 3
      i32.const 1
      i32.add
      local.get 4
      i32.const 1
      i32.add
      i32.store8
      local.get 3
      i32.const 2
      i32.add
      local.get 4
      i32.const 2
      i32.add
      i32.store8
      local.get 3
      i32.const 3
      i32.add
      local.get 4
      i32.const 3
      i32.add
      i32.store8
      local.get 2
      i32.const 4
      i32.add
      local.tee 2
      i32.const 256
      i32.ne
      br_if 0 (;@1;)
    end
    local.get 0
    local.set 5
    block ;; label = @1
      i32.const 0
      i32.load offset=65924
      local.get 1
      i32.sub
      i32.const 0
      i32.load offset=65904
      i32.ge_u
      br_if 0 (;@1;)
      local.get 0
      i32.const 1
      i32.add
      call $recurse
      local.set 5
    end
    i32.const -256
    local.set 2
    block ;; label = @1
      block ;; label = @2
        loop ;; label = @3
          local.get 1
          local.get 2
          i32.add
          local.tee 4
          i32.const 256
          i32.add
          i32.load8_u
          local.get 0
          local.get 2
          i32.add
          local.tee 3
          i32.const 255
          i32.and
          i32.ne
          br_if 1 (;@2;)
          local.get 4
          i32.const 257
          i32.add
          i32.load8_u
          local.get 3
          i32.const 1
          i32.add
          i32.const 255
          i32.and
          i32.ne
          br_if 1 (;@2;)
          local.get 4
          i32.const 258
          i32.add
          i32.load8_u
          local.get 3
          i32.const 2
          i32.add
          i32.const 255
          i32.and
          i32.ne
          br_if 1 (;@2;)
          local.get 4
          i32.const 259
          i32.add
          i32.load8_u
          local.get 3
          i32.const 3
          i32.add
          i32.const 255
          i32.and
          i32.ne
          br_if 1 (;@2;)
          local.get 2
          i32.const 4
          i32.add
          local.tee 2
          i32.eqz
          br_if 2 (;@1;)
          br 0 (;@3;)
        end
      end
      i32.const 10
      i32.const 65611
      call $rt_fail
      unreachable
    end
    local.get 1
    i32.const 256
    i32.add
    global.set $__stack_pointer
    global.get $__stack_pointer
    global.get $threadify_stack_low
    i32.const 128
    i32.add
    i32.lt_u
    global.get $__stack_pointer
    global.get $threadify_stack_high
    i32.gt_u
    i32.or
    if ;; label = @1
      call $threadify_stack_overflow
    end
    local.get 5
  )
  (func $threadify_stack_overflow (type 4)
    unreachable
  )
