// Package schema holds kastor's Avro codecs (goavro/v2): CRC-64-AVRO fingerprints carried
// in record headers, writer schemas published to the _kastor.schemas topic, decoding by
// writer schema then resolution to the reader schema, upcasters, and the backward
// compatibility check run at startup.
//
// Not implemented yet: this package is part of issue #3.
package schema
