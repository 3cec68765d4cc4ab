package jobs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The package's files form three layers (doc.go): the machinery, the kinds
// (kind_*.go) and the assembly (registry.go). A file may use what its own
// layer or a lower one declares, never what a higher one does: the machinery
// names no kind and nothing of the assembly, a kind nothing of the assembly.
func TestLayoutArrowsPointOneWay(t *testing.T) {
	t.Parallel()
	fset, files := parseNonTestFiles(t)

	// Every package-level identifier, by the file that declares it.
	declared := map[string]string{}
	for name, f := range files {
		for _, id := range packageLevelIdents(f) {
			declared[id.Name] = name
		}
	}

	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	seen := 0
	for _, name := range names {
		reported := map[string]bool{}
		// Unresolved holds the identifiers a file uses but does not declare:
		// the package-level ones of other files among them.
		for _, id := range files[name].Unresolved {
			from, ok := declared[id.Name]
			if !ok || from == name {
				continue
			}
			seen++
			if reported[id.Name] || layerOf(from) <= layerOf(name) {
				continue
			}
			reported[id.Name] = true
			t.Errorf("%s (%s) uses %s, declared in %s (%s): arrows point from the kinds to the machinery and from the assembly to both, never back",
				fset.Position(id.Pos()), layerNames[layerOf(name)], id.Name, from, layerNames[layerOf(from)])
		}
	}
	// The assembly names every kind: an analysis that sees no arrow at all
	// would pass whatever the files did.
	require.Greater(t, seen, len(registrations), "uses of other files' identifiers found")
}

const (
	machinery = iota
	kind
	assembly
)

var layerNames = []string{machinery: "machinery", kind: "kind", assembly: "assembly"}

func layerOf(file string) int {
	switch {
	case file == "registry.go":
		return assembly
	case strings.HasPrefix(file, "kind_"):
		return kind
	default:
		return machinery
	}
}

// parseNonTestFiles parses the package's non-test files with identifiers
// resolved within each file.
func parseNonTestFiles(t *testing.T) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	paths, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		src, err := os.ReadFile(p)
		require.NoError(t, err)
		f, err := parser.ParseFile(fset, p, src, 0)
		require.NoError(t, err)
		files[p] = f
	}
	require.Contains(t, files, "registry.go")
	return fset, files
}

// packageLevelIdents are the names f declares at package level: its types,
// constants, variables and functions (methods belong to their type).
func packageLevelIdents(f *ast.File) []*ast.Ident {
	var ids []*ast.Ident
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil && d.Name.Name != "init" {
				ids = append(ids, d.Name)
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					ids = append(ids, s.Name)
				case *ast.ValueSpec:
					ids = append(ids, s.Names...)
				}
			}
		}
	}
	return slices.DeleteFunc(ids, func(id *ast.Ident) bool { return id.Name == "_" })
}
