package main

// modules lists every handler module "serve" registers, in order. Each module adds one
// line here and keeps its wiring in its own serve_<name>.go file.
var modules = []module{
	{"ping", registerPing},
	{"ssh", registerSSH},
	{"dns", registerDNS},
	{"call", registerCall},
	{"fs", registerFS},
	{"sftp", registerSFTP},
}
