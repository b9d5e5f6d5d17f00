package main

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/alkdev/alknet/core"
	"github.com/pelletier/go-toml/v2/unstable"
)

// checkValueTypes reports values whose TOML type cannot mean what the config field
// expects, naming the line and the key. It runs before decoding because the decoder
// accepts some mismatches silently (an integer for a core.Duration would be read as
// nanoseconds: idle_timeout = 60 means 60ns) and words others in Go terms.
// Syntax errors and unknown keys are left to the decoder, which reports them.
func checkValueTypes(src []byte, name string) error {
	var p unstable.Parser
	p.Reset(src)
	var table []string
	var errs []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyPath(e.Key())
		case unstable.KeyValue:
			path := append(slices.Clone(table), keyPath(e.Key())...)
			line := keyLine(&p, e.Key())
			if msg := checkValue(fieldType(reflect.TypeFor[Config](), path), e.Value(), &p); msg != "" {
				errs = append(errs, fmt.Sprintf("%s:%d: %s = %s: %s", name, line, strings.Join(path, "."), valueText(&p, e.Value()), msg))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(errs, "\n"))
}

var (
	durationType      = reflect.TypeFor[core.Duration]()
	textUnmarshalType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkValue returns why v cannot fill a field of type t, or "" if it can (or t is
// unknown: the decoder reports unknown keys).
func checkValue(t reflect.Type, v *unstable.Node, p *unstable.Parser) string {
	if t == nil {
		return ""
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		if v.Kind != unstable.String {
			return `a duration is written as a string such as "10s", "2m" or "1h30m"`
		}
		return ""
	case reflect.PointerTo(t).Implements(textUnmarshalType):
		if v.Kind != unstable.String {
			return "want a quoted string"
		}
		return ""
	}
	switch t.Kind() {
	case reflect.Bool:
		if v.Kind != unstable.Bool {
			return "want true or false"
		}
	case reflect.String:
		if v.Kind != unstable.String {
			return "want a quoted string"
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.Kind != unstable.Integer {
			return "want a whole number"
		}
	case reflect.Float32, reflect.Float64:
		if v.Kind != unstable.Float && v.Kind != unstable.Integer {
			return "want a number"
		}
	case reflect.Slice, reflect.Array:
		if v.Kind != unstable.Array {
			return "want a list, such as [\"a\", \"b\"]"
		}
		for it := v.Children(); it.Next(); {
			if msg := checkValue(t.Elem(), it.Node(), p); msg != "" {
				return "in the list: " + msg
			}
		}
	case reflect.Struct:
		if v.Kind != unstable.InlineTable {
			return "want a table"
		}
		for it := v.Children(); it.Next(); {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				continue
			}
			if msg := checkValue(fieldType(t, keyPath(kv.Key())), kv.Value(), p); msg != "" {
				return strings.Join(keyPath(kv.Key()), ".") + ": " + msg
			}
		}
	}
	return ""
}

// fieldType follows path through t by toml tags (slices stand for their elements, as
// array tables do), or returns nil where the path leaves the known fields.
func fieldType(t reflect.Type, path []string) reflect.Type {
	for _, part := range path {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := tomlField(t, part)
		if !ok {
			return nil
		}
		t = f.Type
	}
	return t
}

func tomlField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "-" {
			continue
		}
		if tag == name || (tag == "" && strings.EqualFold(f.Name, name)) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func keyPath(it unstable.Iterator) []string {
	var out []string
	for it.Next() {
		out = append(out, string(it.Node().Data))
	}
	return out
}

func keyLine(p *unstable.Parser, it unstable.Iterator) int {
	if it.Next() {
		return p.Shape(it.Node().Raw).Start.Line
	}
	return 0
}

// valueText is the value as written, shortened for an error line.
func valueText(p *unstable.Parser, v *unstable.Node) string {
	if v.Raw.Length == 0 {
		return "…"
	}
	s := string(p.Raw(v.Raw))
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}
