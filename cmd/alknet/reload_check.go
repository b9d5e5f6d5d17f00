package main

import (
	"reflect"
	"slices"
	"strings"
)

// reloadable are the config keys a SIGHUP applies (with every key below them), and
// restartOnly the exceptions beneath them. Everything else takes effect at the next
// start. Keep this in step with the onReload hooks of the serve_*.go files.
var (
	reloadable  = []string{"peers", "call", "ssh", "dns.zones", "dns.node_zone", "dns.addresses", "fs.public_tags"}
	restartOnly = []string{"ssh.listen", "ssh.host_key_file"}
)

// restartOnlyChanges lists the keys that differ between the running config and a
// newly read one but that a reload does not apply, in file order.
func restartOnlyChanges(running, next *Config) []string {
	var out []string
	diffKeys(reflect.ValueOf(*running), reflect.ValueOf(*next), "", &out)
	return slices.DeleteFunc(out, appliedOnReload)
}

func appliedOnReload(key string) bool {
	under := func(prefixes []string) bool {
		return slices.ContainsFunc(prefixes, func(p string) bool { return key == p || strings.HasPrefix(key, p+".") })
	}
	return under(reloadable) && !under(restartOnly)
}

// diffKeys appends the dotted toml keys of the leaves that differ between a and b
// (structs are walked, anything else compared whole).
func diffKeys(a, b reflect.Value, prefix string, out *[]string) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		fa, fb := a.Field(i), b.Field(i)
		if f.Type.Kind() == reflect.Struct {
			diffKeys(fa, fb, key, out)
			continue
		}
		if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			*out = append(*out, key)
		}
	}
}
