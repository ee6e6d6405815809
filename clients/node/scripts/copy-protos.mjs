// Copies the broker's API definitions (../../proto/credbroker/v1/*.proto) into ./proto, which the
// package ships and loads at runtime. The google/protobuf imports (duration, timestamp) are not
// copied: @grpc/proto-loader (protobufjs) carries them. Outside the repository (an unpacked
// tarball) the shipped copy is kept as is.
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(pkg, "..", "..", "proto", "credbroker", "v1");
const target = join(pkg, "proto", "credbroker", "v1");

if (!existsSync(source)) {
  if (!existsSync(target)) {
    console.error(`copy-protos: neither ${source} nor a shipped copy in ${target}`);
    process.exit(1);
  }
  process.exit(0);
}
rmSync(join(pkg, "proto"), { recursive: true, force: true });
mkdirSync(target, { recursive: true });
for (const name of readdirSync(source).filter((n) => n.endsWith(".proto")).sort()) {
  copyFileSync(join(source, name), join(target, name));
}
