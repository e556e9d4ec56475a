// toxy (npm) as a plain pass-through with no poison: a row of bench/proxy_overhead.py.
//
// Every method and path is forwarded unchanged to the upstream. toxy is rocky on top of
// node-http-proxy, which opens a new upstream connection per request ("connection: close")
// unless it is given an `agent`. --keep-alive passes an http.Agent({keepAlive: true}), but
// rocky deep-clones its options for every request (lodash cloneDeep in clone-request.js), so
// the agent does not survive: with toxy 0.3.16 / rocky 0.4.16 on Node 20 the first request
// goes through and every later one answers 500 {"message":"Illegal invocation"}. The bench
// therefore runs toxy with its default (no flag); the flag is kept to show the problem.
//
// Usage: node bench/toxy_proxy.js PORT UPSTREAM_URL [--keep-alive]
// (toxy is looked up in NODE_PATH; bench/proxy_overhead.py installs it into .bench/node.)
'use strict'

const http = require('http')
const toxy = require('toxy')

const [port, upstream, ...flags] = process.argv.slice(2)
if (!port || !upstream) {
  console.error('usage: node toxy_proxy.js PORT UPSTREAM_URL [--keep-alive]')
  process.exit(2)
}
const opts = {}
if (flags.includes('--keep-alive')) {
  opts.agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
}

const proxy = toxy(opts)
proxy.forward(upstream)
proxy.all('/*')
proxy.listen(Number(port), '127.0.0.1')
