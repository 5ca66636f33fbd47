module vivified.dev/bench/ceiling

go 1.26
