//go:build !unix

package contract

// processCPU is not measured where getrusage is missing: the benchmarks report 0.
func processCPU() int64 { return 0 }
