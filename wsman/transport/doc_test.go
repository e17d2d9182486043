package transport

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportedNamesDocumented checks that every exported function and
// method of the package has its own doc comment. A method inserted
// between a constructor's comment and the constructor takes the comment
// over and leaves the constructor undocumented, which gofmt and vet do
// not notice.
func TestExportedNamesDocumented(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || !fd.Name.IsExported() || !exportedRecv(fd) {
				continue
			}
			// Error and String satisfy well-known interfaces; their
			// meaning is the interface's.
			if fd.Recv != nil && (fd.Name.Name == "Error" || fd.Name.Name == "String") {
				continue
			}
			if fd.Doc == nil {
				t.Errorf("%s: exported func %s has no doc comment", fset.Position(fd.Pos()), fd.Name.Name)
				continue
			}
			if doc := fd.Doc.Text(); !strings.HasPrefix(doc, fd.Name.Name+" ") {
				t.Errorf("%s: the doc comment of %s does not start with its name: %q", fset.Position(fd.Pos()), fd.Name.Name, firstLine(doc))
			}
		}
	}
}

// exportedRecv reports whether fd is a function or a method of an
// exported type: a method of an unexported type is not in the API.
func exportedRecv(fd *ast.FuncDecl) bool {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return true
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	id, ok := t.(*ast.Ident)
	return ok && id.IsExported()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
