// Command bench runs tidemark's benchmarks and prints figures and ratios.
package main

import "fmt"

func main() { fmt.Println("bench: not yet") }
