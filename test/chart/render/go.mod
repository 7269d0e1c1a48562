// GOPATH mode only (see test/chart/renderer.ts): this file marks the code as module-aware,
// so the go command resolves sprig/v3 to Debian's GOPATH copy at /usr/share/gocode.
module chart-render

go 1.19
