;; Written by hand (wasm-ld gives no way to name a start function of one's own): a non-shared
;; module in lld's shape with an active data segment and a start function that counts its runs.
;; After the transform it runs once, in the first instance, inside threadify_init's one-time
;; branch (docs/abi.md, "Initialised once").
(module
  (memory 2)
  (global $__stack_pointer (mut i32) (i32.const 65536))
  (export "memory" (memory 0))
  (start $count_runs)
  (func $count_runs
    (drop (i32.atomic.rmw.add (i32.const 65540) (i32.const 1))))
  (data $.data (i32.const 65536) "*\00\00\00")
  (@custom "target_features" "\02+\07atomics+\0bbulk-memory"))
