// Preloaded into the Node test peers (node --require): their servers call app.listen(PORT),
// which binds every interface; this makes a bare port mean 127.0.0.1, so tests stay on loopback.
const net = require('net');
const orig = net.Server.prototype.listen;
net.Server.prototype.listen = function (...a) {
  if (typeof a[0] === 'number' || (typeof a[0] === 'string' && /^\d+$/.test(a[0]))) {
    if (a.length === 1 || typeof a[1] === 'function') a.splice(1, 0, '127.0.0.1');
  } else if (a[0] && typeof a[0] === 'object' && !a[0].host && a[0].port !== undefined) {
    a[0] = { ...a[0], host: '127.0.0.1' };
  }
  return orig.apply(this, a);
};
