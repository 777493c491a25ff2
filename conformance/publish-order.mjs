// Publishes one smartrent.order.placed.v1 built with the CloudEvents
// JavaScript SDK and sent with the NATS JavaScript client, as a shop's
// order service in another language would: structured mode, Content-Type
// application/cloudevents+json, Nats-Msg-Id = event id. Prints the PubAck.
//
//   node publish-order.mjs nats://127.0.0.1:4222 ORD-JS-1
import { randomUUID } from "node:crypto";
import { connect, headers } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { CloudEvent, HTTP } from "cloudevents";

const [servers, orderId] = process.argv.slice(2);
const ce = new CloudEvent({
  id: randomUUID(),
  source: "urn:shop:order-service-js",
  type: "smartrent.order.placed.v1",
  subject: orderId,
  dataschema: "urn:smartrent:schema:smartrent.order.placed.v1",
  datacontenttype: "application/json",
  data: {
    orderId, period: 24, locale: "et-EE", description: "Apple iPhone 16 128GB rental",
    returnUrl: `https://shop.example/orders/${orderId}/return`, cancelUrl: `https://shop.example/orders/${orderId}/cancel`,
    heroDevice: { identifierType: "EAN", identifier: "0195949821899", modelId: "apple-iphone-16-128gb", modelName: "Apple iPhone 16 128GB", netPrice: 799 },
  },
});
const msg = HTTP.structured(ce);
const nc = await connect({ servers, name: "smartrent-conformance-js-publisher" });
try {
  const h = headers();
  h.set("Content-Type", msg.headers["content-type"]);
  h.set("Nats-Msg-Id", ce.id);
  const ack = await jetstream(nc).publish("smartrent.in.order.placed", msg.body, { headers: h });
  console.log(JSON.stringify({ stream: ack.stream, seq: ack.seq, id: ce.id }));
} finally {
  await nc.close();
}
