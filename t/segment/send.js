// Sends a fixed set of calls with Segment's own server library
// (@segment/analytics-node, installed by scripts/install-deps.sh into
// build/npm), unchanged but for its host: the real wire format, the real
// Basic auth with the writeKey.  Usage: node send.js HOST WRITEKEY UUID
'use strict';

const { Analytics } = require('@segment/analytics-node');

const [host, writeKey, uuid] = process.argv.slice(2);

const a = new Analytics({ writeKey, host, path: '/v1/batch',
                          maxEventsInBatch: 20, flushInterval: 50,
                          maxRetries: 0 });
const errors = [];

a.on('error', (e) => errors.push(String(e && (e.reason || e.message || e))));

a.identify({ userId: 'SEG-1', traits: { email: 'seg@example.com',
                                        first_name: 'Sega' } });
a.track({ anonymousId: uuid, event: 'Product Added',
          properties: { sku: 'SEG-SKU', name: 'Seg tent', price: 99 } });
a.page({ anonymousId: uuid, name: 'Home', category: 'Shop',
         properties: { url: 'https://shop.example/' } });
a.alias({ userId: 'SEG-1', previousId: uuid });
a.group({ userId: 'SEG-1', groupId: 'acme', traits: { name: 'Acme' } });
a.track({ userId: 'SEG-1', event: 'Order Completed',
          properties: { order_id: 'SEG-O-1', total: 99,
                        products: [{ sku: 'SEG-SKU', price: 99 }] } });

a.closeAndFlush({ timeout: 10000 }).then(() => {
    console.log(JSON.stringify({ errors }));
    process.exit(errors.length ? 1 : 0);
});
