package delivery

// Events as the tracking API stores them (see internal/ingest/normalize.go): type lower-case,
// messageId kept or assigned, batch context merged in, context.ip filled, timestamp corrected for
// the client's clock, originalTimestamp, sentAt and receivedAt in RFC 3339.

const trackPayload = `{
	"type": "track",
	"messageId": "ajs-next-1772366402123-6f1c4d1e-7f3b-4f0e-9a55-2d0c1b3a4e5f",
	"userId": "user-4242",
	"anonymousId": "anon-5e1f2c",
	"event": "Order Completed",
	"properties": {
		"orderId": "o-1001",
		"revenue": 29.99,
		"currency": "EUR",
		"coupon": null,
		"products": [{"sku": "sku-1", "price": 25.49}],
		"shipping": {"method": "express", "cost": 4.5},
		"gift": true
	},
	"context": {
		"ip": "203.0.113.7",
		"locale": "fr-FR",
		"library": {"name": "analytics.js", "version": "next-1.70.0"},
		"page": {"url": "https://shop.example/checkout", "referrer": "https://shop.example/cart", "title": "Checkout"},
		"os": {"name": "Mac OS X", "version": "14.5"},
		"traits": {"plan": "pro"},
		"campaign": {"source": "newsletter", "medium": "email", "name": "spring"},
		"location": {"country": "France", "city": "Lyon", "latitude": 45.76, "longitude": 4.84}
	},
	"integrations": {"All": true, "Amplitude": {"session_id": 1772366400000}},
	"timestamp": "2026-03-01T12:00:00.123Z",
	"originalTimestamp": "2026-03-01T12:00:02.123Z",
	"sentAt": "2026-03-01T12:00:03Z",
	"receivedAt": "2026-03-01T12:00:01Z"
}`

const pagePayload = `{
	"type": "page",
	"messageId": "api-0f2a6b1c9d8e7f6a5b4c3d2e1f0a9b8c",
	"anonymousId": "anon-5e1f2c",
	"name": "Pricing",
	"category": "Docs",
	"properties": {
		"name": "Pricing",
		"category": "Docs",
		"url": "https://shop.example/docs/pricing?ref=nav",
		"path": "/docs/pricing",
		"title": "Pricing | Shop",
		"referrer": "https://search.example/"
	},
	"context": {
		"ip": "203.0.113.7",
		"page": {"url": "https://shop.example/docs/pricing?ref=nav", "referrer": "https://search.example/", "title": "Pricing | Shop"}
	},
	"timestamp": "2026-03-01T12:05:00Z",
	"receivedAt": "2026-03-01T12:05:00.250Z"
}`

const unnamedPagePayload = `{
	"type": "page",
	"messageId": "api-1f2a6b1c9d8e7f6a5b4c3d2e1f0a9b8c",
	"userId": "user-4242",
	"properties": {"url": "https://shop.example/"},
	"context": {"page": {"url": "https://shop.example/", "title": "Shop"}},
	"timestamp": "2026-03-01T12:06:00Z",
	"receivedAt": "2026-03-01T12:06:00Z"
}`

const screenPayload = `{
	"type": "screen",
	"messageId": "8d7c3e2a-1b4f-4c6d-9e8f-0a1b2c3d4e5f",
	"userId": "user-4242",
	"anonymousId": "C8F9E604-F01A-4BD9-95C6-8E5357DF265D",
	"name": "Home",
	"properties": {"tab": "feed"},
	"context": {
		"app": {"name": "Shop", "version": "3.2.1", "build": "321"},
		"device": {"id": "device-9d1e", "manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"},
		"os": {"name": "iOS", "version": "17.4"},
		"network": {"carrier": "Orange"},
		"ip": "198.51.100.23"
	},
	"timestamp": "2026-03-01T12:10:00.5Z",
	"receivedAt": "2026-03-01T12:10:01Z"
}`

const unnamedScreenPayload = `{
	"type": "screen",
	"messageId": "9d7c3e2a-1b4f-4c6d-9e8f-0a1b2c3d4e5f",
	"anonymousId": "anon-5e1f2c",
	"properties": {},
	"context": {},
	"timestamp": "2026-03-01T12:11:00Z",
	"receivedAt": "2026-03-01T12:11:00Z"
}`

const identifyPayload = `{
	"type": "identify",
	"messageId": "node-1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6",
	"userId": "user-4242",
	"anonymousId": "anon-5e1f2c",
	"traits": {"email": "ada@example.com", "plan": "pro", "logins": 5},
	"context": {"ip": "203.0.113.7"},
	"timestamp": "2026-03-01T11:59:00Z",
	"receivedAt": "2026-03-01T11:59:00Z"
}`

const groupPayload = `{
	"type": "group",
	"messageId": "node-2c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6",
	"userId": "user-4242",
	"groupId": "acme-inc",
	"traits": {"name": "Acme", "employees": 120},
	"context": {"ip": "203.0.113.7"},
	"timestamp": "2026-03-01T11:58:00Z",
	"receivedAt": "2026-03-01T11:58:00Z"
}`

const aliasPayload = `{
	"type": "alias",
	"messageId": "node-3c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6",
	"userId": "user-4242",
	"previousId": "anon-5e1f2c",
	"context": {"ip": "203.0.113.7"},
	"timestamp": "2026-03-01T11:57:00Z",
	"receivedAt": "2026-03-01T11:57:00Z"
}`
