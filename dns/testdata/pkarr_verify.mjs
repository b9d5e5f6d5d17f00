// Verifies a pkarr SignedPacket (hex of key || signature || timestamp || packet, on
// stdin) with pkarr's JavaScript implementation (npm pkarr 1.3.0) and prints its
// records as JSON. Used by TestPkarrJSVerifiesOurPacket when ALKNET_PKARR_JS names a
// folder where "npm install pkarr@1.3.0" ran.
import fs from 'fs'
import SignedPacket from 'pkarr/lib/signed_packet.js'

const b = Buffer.from(fs.readFileSync(0, 'utf8').trim(), 'hex')
const sp = SignedPacket.fromBytes(b.subarray(0, 32), b.subarray(32))
console.log(JSON.stringify(sp.packet().answers.map(a => [a.name, a.type, a.data.toString()])))
