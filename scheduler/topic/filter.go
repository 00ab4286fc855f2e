package topic

/*
Subscription filters.

A filter is a boolean expression over one variable, data, written in the
notation of switch, the Python service topics replace. Switch evaluated its
filters with Python eval, so any Python ran with the service's rights; here
they are compiled by github.com/expr-lang/expr, whose syntax covers what
switch's filters use (data["k"], ==, !=, <, and, or, not, string and number
literals), and the AST is patched so that the Python meaning holds:

  - data["a"]["b"] (and data.a.b) never fails: a missing key, or indexing
    null, a number, a string or a bool, or a list with a non-integer or
    out-of-range index, gives null. A list index may be negative (from the
    end) as in Python, and 0 or 0.0 both work since JSON numbers are floats.
  - and, or, not, and the final result use Python truthiness: null, false,
    0, "", an empty list and an empty object are false, everything else is
    true. and/or short-circuit and give one of their operands, as in Python
    (data["a"] or "x" is data["a"] when it is truthy).
  - True, False and None are true, false and null (expr's own true, false
    and nil work too). == and != compare numbers by value whatever their
    Go type, so JSON's 1 (a float64) equals the literals 1 and 1.0; but
    bools are not numbers (True == 1 is a compile error, not true).
  - not binds as in Python: not a == b is not (a == b).
  - in tests a key of an object, an element of a list, or a substring of
    a string ("b" in "abc", which is expr's contains); in null is false.
  - An empty (or all-space) filter matches everything.

Errors: a filter that does not parse or type-check, that names a variable
other than data, or that uses a function we do not provide, fails
CompileFilter with expr's message (it points at the column). A filter that
fails at run time (1 < "a", null < 1, len(null)) does not match, and Match
returns the error so the caller can report it with the message.

Sandbox: expr has no statements, loops or I/O, and a filter sees only
data. On top of that we bound the source (MaxFilterLen bytes), the AST
(maxFilterNodes), and the VM's allocations (filterMemoryBudget, expr's
budget on ranges and array literals), so that each node costs at most
about the size of the message and a filter runs in time linear in both.
To keep that true: all builtins are disabled except a few that are pure
and give at most the size of their input (safeBuiltins), as the
predicates (all, map, filter, reduce ...) would make a small filter loop
over big ranges and repeat or toJSON are not filters' business; let is
rejected, as chained lets double a string per node (let a = s + s; let
b = a + a; ...); and + on strings is capped at maxConcat bytes, since
s + s + s ... copies a growing string at each node. A panic in
evaluation is recovered and reported as an error.
*/

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser/operator"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"
)

const (
	// MaxFilterLen bounds a filter's source; switch's filters are one line.
	MaxFilterLen = 4096
	// maxFilterNodes bounds the AST as parsed (expr counts in the parser;
	// our rewrite adds a few nodes per and/or/[]), so a filter cannot make
	// compile or evaluation slow.
	maxFilterNodes = 1000
	// filterMemoryBudget is expr's allocation budget per evaluation (in
	// elements of ranges and array literals); filters over a message need
	// none, so a tenth of expr's default is plenty.
	filterMemoryBudget = 100_000
	// maxConcat caps a string made by + (see the sandbox above).
	maxConcat = 64 << 10
)

// In Python not binds looser than comparisons and arithmetic (not a == b
// is not (a == b)), in expr tighter ((not a) == b), which would silently
// change switch's filters. expr's parser reads the precedence from this
// table at each parse, and has no option for it, so we set it once here
// to that of the comparisons: the operand of not then takes in ==, in,
// +, ... but stops at and/or, as in Python. The C-like ! is left alone.
// This changes the keyword not for every user of expr in the process;
// filters are the only one.
func init() {
	operator.Unary["not"] = operator.Operator{Precedence: operator.Binary["=="].Precedence, Associativity: operator.Left}
}

// safeBuiltins are the expr builtins a filter may call: pure, no I/O, and
// each result at most as big as its argument.
var safeBuiltins = []string{"len", "lower", "upper", "trim", "abs", "int", "float", "string", "type"}

// Names of the functions the rewrite calls. They are ordinary identifiers,
// so a filter may call them too, which is harmless.
const (
	getFunc     = "get"
	truthyFunc  = "truthy"
	operandFunc = "operand"
	addFunc     = "add"
	inFunc      = "contains_"
)

// Filter is a compiled subscription filter; safe for concurrent use, since
// the program is read-only and each Match borrows its own VM.
type Filter struct {
	src  string
	prog *vm.Program // nil for an empty filter, which matches everything
}

// Data is what a filter sees as data: JSON-like values (map[string]any,
// []any, string, float64, bool, nil) plus the headers' map[string]string.
// A filter never modifies it.
type Data map[string]any

// compileOptions are shared by all compiles; expr.Compile does not modify
// them.
var compileOptions = func() []expr.Option {
	opts := []expr.Option{
		// Only data is defined: any other name is a compile error. True,
		// False and None are rewritten to constants before the type check.
		expr.Env(map[string]any{"data": map[string]any{}}),
		expr.MaxNodes(maxFilterNodes),
		expr.DisableAllBuiltins(),
		// The signatures let the checker see that truthy gives a bool,
		// which && and ?: require of their operands.
		expr.Function(getFunc, func(p ...any) (any, error) { return get(p[0], p[1]), nil }, new(func(any, any) any)),
		expr.Function(truthyFunc, func(p ...any) (any, error) { return truthy(p[0]), nil }, new(func(any) bool)),
		// The identity, typed any: see the and/or rewrite.
		expr.Function(operandFunc, func(p ...any) (any, error) { return p[0], nil }, new(func(any) any)),
		expr.Function(addFunc, func(p ...any) (any, error) { return add(p[0], p[1]) }, new(func(any, any) any)),
		expr.Function(inFunc, func(p ...any) (any, error) { return in(p[0], p[1]) }, new(func(any, any) bool)),
	}
	for _, name := range safeBuiltins {
		opts = append(opts, expr.EnableBuiltin(name))
	}
	return opts
}()

// CompileFilter compiles a filter, so that a bad one is rejected when the
// subscription is created rather than at each message. The error carries
// expr's message, which shows where the filter went wrong.
func CompileFilter(src string) (*Filter, error) {
	if len(src) > MaxFilterLen {
		return nil, fmt.Errorf("filter: %d bytes, longer than the %d allowed", len(src), MaxFilterLen)
	}
	if strings.TrimSpace(src) == "" {
		return &Filter{src: src}, nil
	}
	p := &pythonPatch{}
	// Two walks: the first rewrites the tree and so learns where its root
	// is (the last node visited); the second turns the root into a plain
	// test, since only the truthiness of the result counts.
	opts := append(compileOptions[:len(compileOptions):len(compileOptions)], expr.Patch(p), expr.Patch(rootPatch{p}))
	prog, err := expr.Compile(src, opts...)
	if err == nil && p.err != nil {
		err = p.err.Bind(file.NewSource(src))
	}
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return &Filter{src: src, prog: prog}, nil
}

// Source returns the filter as written, for showing back to the user.
func (f *Filter) Source() string { return f.src }

// runner is a VM with the env map it is run with, pooled because a VM
// keeps its stack between runs and is not safe for concurrent use, and the
// env map would otherwise be allocated per message.
type runner struct {
	vm  vm.VM
	env map[string]any
}

var runners = sync.Pool{New: func() any {
	return &runner{vm: vm.VM{MemoryBudget: filterMemoryBudget}, env: map[string]any{"data": nil}}
}}

// Match evaluates the filter against a message's data; a runtime error
// means no match and is returned, so that the caller can tell the
// publisher why a subscription did not get the message.
func (f *Filter) Match(d Data) (ok bool, err error) {
	if f.prog == nil {
		return true, nil
	}
	r := runners.Get().(*runner)
	defer func() {
		// vm.Run recovers its own panics; this is for anything else, and
		// the runner is dropped rather than reused in an unknown state.
		if p := recover(); p != nil {
			ok, err = false, fmt.Errorf("filter: panic: %v", p)
			return
		}
		r.env["data"] = nil // do not keep the message alive in the pool
		runners.Put(r)
	}()
	r.env["data"] = map[string]any(d)
	out, err := r.vm.Run(f.prog, r.env)
	if err != nil {
		return false, fmt.Errorf("filter: %w", err)
	}
	return truthy(out), nil
}

// MessageData builds data for a message: body parsed as JSON when it is
// valid JSON, else the string; the top-level keys of an object body are
// merged in, and the reserved names (body, headers, http_method, topic,
// app, id) win over them so a publisher cannot spoof them; http_method is
// lower case as switch had it. Headers are used as given, names included.
func MessageData(app, topic, id, method string, headers map[string]string, body []byte) Data {
	var parsed any
	if err := json.Unmarshal(body, &parsed); err != nil {
		parsed = string(body)
	}
	obj, _ := parsed.(map[string]any)
	d := make(Data, len(obj)+6)
	for k, v := range obj {
		d[k] = v
	}
	d["body"] = parsed
	d["headers"] = headers
	d["http_method"] = strings.ToLower(method)
	d["topic"] = topic
	d["app"] = app
	d["id"] = id
	return d
}

// FilterCache caches compiled filters keyed by subscription key and
// revision, so that each revision of a subscription compiles once rather
// than at every message. It holds one revision per key (a new revision
// replaces the old one) and at most max keys: when full it is cleared,
// which costs a recompile of the live filters, simpler and no slower in
// practice than an LRU for a set of subscriptions that rarely exceeds it.
// Safe for concurrent use.
type FilterCache struct {
	max     int
	compile func(string) (*Filter, error) // CompileFilter; tests count calls
	mu      sync.Mutex
	entries map[string]*cacheEntry
}

// cacheEntry compiles once even when several goroutines miss together.
type cacheEntry struct {
	rev  int64
	src  string
	once sync.Once
	f    *Filter
	err  error
}

// NewFilterCache returns a cache of at most size subscriptions (at least 1).
func NewFilterCache(size int) *FilterCache {
	return &FilterCache{max: max(size, 1), compile: CompileFilter, entries: make(map[string]*cacheEntry)}
}

// Get returns the compiled filter for revision rev of subscription key,
// whose source is src, compiling it on first use. A compile error is
// cached too, as the same source fails the same way. The source is
// compared as well, so a caller that reuses a revision for another filter
// gets the right one rather than a stale one.
func (c *FilterCache) Get(key string, rev int64, src string) (*Filter, error) {
	c.mu.Lock()
	e := c.entries[key]
	if e != nil && rev < e.rev {
		// A late reader of an older revision: serve it without evicting
		// the newer one, which the other readers use.
		c.mu.Unlock()
		return c.compile(src)
	}
	if e == nil || e.rev != rev || e.src != src {
		if e == nil && len(c.entries) >= c.max {
			clear(c.entries)
		}
		e = &cacheEntry{rev: rev, src: src}
		c.entries[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.f, e.err = c.compile(src) })
	return e.f, e.err
}

// get is data[k] with Python's meaning where it works and null where
// Python would raise (KeyError, IndexError, TypeError): a filter on a
// message without the key simply does not match.
func get(x, k any) any {
	switch x := x.(type) {
	case map[string]any:
		if s, ok := k.(string); ok {
			return x[s]
		}
	case Data:
		if s, ok := k.(string); ok {
			return x[s]
		}
	case map[string]string:
		if s, ok := k.(string); ok {
			if v, ok := x[s]; ok {
				return v
			}
		}
	case []any:
		if i, ok := listIndex(k, len(x)); ok {
			return x[i]
		}
	}
	return nil
}

// listIndex converts k to an index into a list of n elements, counting
// from the end when negative as Python does.
func listIndex(k any, n int) (int, bool) {
	var i int
	switch k := k.(type) {
	case int:
		i = k
	case int64:
		if k < math.MinInt32 || k > math.MaxInt32 {
			return 0, false
		}
		i = int(k)
	case float64:
		if k != math.Trunc(k) || k < math.MinInt32 || k > math.MaxInt32 {
			return 0, false
		}
		i = int(k)
	default:
		return 0, false
	}
	if i < 0 {
		i += n
	}
	return i, i >= 0 && i < n
}

// add is expr's + with strings capped at maxConcat bytes.
func add(a, b any) (any, error) {
	if s, ok := a.(string); ok {
		if t, ok := b.(string); ok {
			if len(s)+len(t) > maxConcat {
				return nil, fmt.Errorf("string longer than %d bytes", maxConcat)
			}
			return s + t, nil
		}
	}
	return runtime.Add(a, b), nil // panics on bad operands, which vm.Run reports
}

// in is expr's in (a key of a map, an element of a list, false for null)
// plus Python's substring test, "b" in "abc", which expr spells contains.
func in(a, b any) (bool, error) {
	if t, ok := b.(string); ok {
		s, ok := a.(string)
		if !ok {
			return false, fmt.Errorf("in <string> needs a string on the left, not %T", a)
		}
		return strings.Contains(t, s), nil
	}
	return runtime.In(a, b), nil // panics on bad operands, which vm.Run reports
}

// truthy is Python's bool(x) for JSON-like values.
func truthy(x any) bool {
	switch x := x.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0
	case int:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	case map[string]string:
		return len(x) > 0
	case Data:
		return len(x) > 0
	}
	v := reflect.ValueOf(x)
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.Array, reflect.String:
		return v.Len() > 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() != 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() != 0
	case reflect.Float32, reflect.Float64:
		return v.Float() != 0
	case reflect.Pointer, reflect.Interface:
		return !v.IsNil()
	}
	return true
}

// pythonPatch rewrites the AST, bottom-up (ast.Walk visits children
// first), to give switch's Python meaning; see the comment at the top.
// It runs once per compile and is not shared.
type pythonPatch struct {
	err  *file.Error // the first construct we refuse
	vars int
	root *ast.Node // the last node visited, which is the root
	// boolOf maps an and/or node rewritten to give an operand (Python's
	// value) to the same test giving a bool, used where only truthiness
	// counts (operand of and, or, not) to save the temporary and a call.
	boolOf map[ast.Node]ast.Node
}

// boolOps are the operators whose result is already a bool.
var boolOps = map[string]bool{
	"==": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true,
	"matches": true, "contains": true,
	"startsWith": true, "endsWith": true, "&&": true, "||": true,
}

func (p *pythonPatch) Visit(node *ast.Node) {
	p.root = node
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "True":
			ast.Patch(node, &ast.BoolNode{Value: true})
		case "False":
			ast.Patch(node, &ast.BoolNode{Value: false})
		case "None":
			ast.Patch(node, &ast.NilNode{})
		case "data", "$env", getFunc, truthyFunc, operandFunc, addFunc, inFunc:
		default:
			// expr's checker says so too, except for a name called
			// inside an argument of our functions (nofunc(1) and x).
			p.fail(n, "unknown name %s", n.Value)
		}
	case *ast.MemberNode:
		if n.Method {
			return // a method call: data's values have none, so it fails at run time
		}
		ast.Patch(node, call(getFunc, n.Node, n.Property))
	case *ast.UnaryNode:
		if n.Operator == "not" || n.Operator == "!" {
			n.Operator = "!"
			n.Node = p.asBool(n.Node)
		}
	case *ast.BinaryNode:
		var and bool
		switch n.Operator {
		case "and", "&&":
			and = true
		case "or", "||":
		case "+":
			ast.Patch(node, call(addFunc, n.Left, n.Right))
			return
		case "in":
			ast.Patch(node, call(inFunc, n.Left, n.Right))
			return
		default:
			return
		}
		test := &ast.BinaryNode{Operator: "||", Left: p.asBool(n.Left), Right: p.asBool(n.Right)}
		if and {
			test.Operator = "&&"
		}
		// Python's value: let t = left; truthy(t) ? right : t (for and),
		// truthy(t) ? t : right (for or). The name cannot be written in a
		// filter (it starts with a digit), so it cannot clash or be read.
		name := strconv.Itoa(p.vars) + "t"
		p.vars++
		t := &ast.IdentifierNode{Value: name}
		cond := &ast.ConditionalNode{Cond: call(truthyFunc, t), Exp1: t, Exp2: n.Right}
		if and {
			cond.Exp1, cond.Exp2 = n.Right, t
		}
		// expr's checker types a ?: by its first branch when the second
		// is assignable to it, so ("a" and data["x"]) would be a string
		// and == 1 a compile error; operand() makes it any.
		value := call(operandFunc, &ast.VariableDeclaratorNode{Name: name, Value: n.Left, Expr: cond})
		ast.Patch(node, value)
		if p.boolOf == nil {
			p.boolOf = make(map[ast.Node]ast.Node)
		}
		p.boolOf[value] = test
	case *ast.ConditionalNode:
		n.Cond = p.asBool(n.Cond)
	case *ast.BuiltinNode:
		if !slices.Contains(safeBuiltins, n.Name) {
			p.fail(n, "%s is not allowed in a filter", n.Name)
		}
	case *ast.VariableDeclaratorNode:
		// Ours are never visited (Walk does not enter a patched node),
		// so this is the filter's own let.
		p.fail(n, "let is not allowed in a filter")
	}
}

func (p *pythonPatch) fail(n ast.Node, format string, args ...any) {
	if p.err == nil {
		p.err = &file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)}
	}
}

// rootPatch is the second walk of pythonPatch.
type rootPatch struct{ p *pythonPatch }

func (r rootPatch) Visit(node *ast.Node) {
	if node == r.p.root {
		ast.Patch(node, r.p.asBool(*node))
	}
}

// asBool gives n's truthiness as a bool node, without a call when n gives
// a bool already.
func (p *pythonPatch) asBool(n ast.Node) ast.Node {
	if b, ok := p.boolOf[n]; ok {
		return b
	}
	switch n := n.(type) {
	case *ast.BoolNode:
		return n
	case *ast.UnaryNode:
		if n.Operator == "!" {
			return n
		}
	case *ast.BinaryNode:
		if boolOps[n.Operator] {
			return n
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && (id.Value == truthyFunc || id.Value == inFunc) {
			return n
		}
	}
	return call(truthyFunc, n)
}

func call(name string, args ...ast.Node) ast.Node {
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: args}
}
