/**
 * gRPC server reflection (`grpc.reflection.v1` and `v1alpha`), so `grpcurl
 * list` / `describe` work without .proto files.
 *
 * The index and the answers come from `@grpc/reflection`'s implementation,
 * fed with the file descriptors embedded in src/gen (a compiled binary has no
 * .proto files on disk). Its own `addToServer` is not used because it loads
 * reflection.proto from node_modules; the RPC is bound here instead, from the
 * generated reflection descriptors. v1alpha is wire-identical to v1, so it is
 * served with the v1 codecs under the v1alpha path.
 *
 * The implementation (and protobufjs, which it brings) is loaded and indexed
 * on the first reflection call, not at start-up: it was a third of the
 * agent's start-up time (bench/README.md, benchmark 10).
 */
import { create, toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServerDuplexStream, ServiceDefinition, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { ReflectionV1Implementation } from "@grpc/reflection/build/src/implementations/reflection-v1.js";
import { invalid } from "../errors.ts";
import {
  ServerReflection,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { file_grpc_reflection_v1alpha_reflection } from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { statusOf } from "./bind-service.ts";
import { createServiceDefinition, DecodeFailure, type Decoded } from "./service-definition.ts";

type LoaderRequest = Parameters<ReflectionV1Implementation["handleServerReflectionRequest"]>[0];
type LoaderResponse = ReturnType<ReflectionV1Implementation["handleServerReflectionRequest"]>;
type PackageDefinition = ConstructorParameters<typeof ReflectionV1Implementation>[0];

/** A bound reflection service: one definition per protocol version, same implementation. */
export interface ReflectionService {
  services: { definition: ServiceDefinition; implementation: UntypedServiceImplementation }[];
}

function toLoaderRequest(req: ServerReflectionRequest): LoaderRequest {
  const r = req.messageRequest;
  const out: LoaderRequest = { host: req.host };
  switch (r.case) {
    case "fileContainingExtension":
      return {
        ...out,
        messageRequest: r.case,
        fileContainingExtension: { containingType: r.value.containingType, extensionNumber: r.value.extensionNumber },
      };
    case undefined:
      return out;
    default:
      return { ...out, messageRequest: r.case, [r.case]: r.value };
  }
}

function fromLoaderResponse(req: ServerReflectionRequest, res: LoaderResponse): ServerReflectionResponse {
  const base = { validHost: res.validHost ?? req.host, originalRequest: req };
  if (res.listServicesResponse) {
    const service = (res.listServicesResponse.service ?? []).map((s) => ({ name: s.name ?? "" }));
    return create(ServerReflectionResponseSchema, { ...base, messageResponse: { case: "listServicesResponse", value: { service } } });
  }
  if (res.fileDescriptorResponse) {
    const fileDescriptorProto = (res.fileDescriptorResponse.fileDescriptorProto ?? []).map((b) =>
      typeof b === "string" ? Buffer.from(b, "base64") : new Uint8Array(b),
    );
    return create(ServerReflectionResponseSchema, { ...base, messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto } } });
  }
  if (res.allExtensionNumbersResponse) {
    const r = res.allExtensionNumbersResponse;
    return create(ServerReflectionResponseSchema, {
      ...base,
      messageResponse: {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: r.baseTypeName ?? "", extensionNumber: r.extensionNumber ?? [] },
      },
    });
  }
  const e = res.errorResponse;
  return create(ServerReflectionResponseSchema, {
    ...base,
    messageResponse: {
      case: "errorResponse",
      value: { errorCode: e?.errorCode ?? 2, errorMessage: e?.errorMessage ?? "unknown reflection request" },
    },
  });
}

/**
 * The implementation keeps its indexes in plain objects, so a name such as
 * `constructor` or `__proto__` would be found on `Object.prototype` and
 * answered with an empty descriptor. Such names are answered here, as not found.
 */
function inheritedName(req: ServerReflectionRequest): LoaderResponse | undefined {
  const r = req.messageRequest;
  let name: string;
  let errorMessage: string;
  switch (r.case) {
    case "fileByFilename":
      [name, errorMessage] = [r.value, `Proto file not found: ${r.value}`];
      break;
    case "fileContainingSymbol":
      [name, errorMessage] = [r.value, `Symbol not found: ${r.value}`];
      break;
    case "allExtensionNumbersOfType":
      [name, errorMessage] = [r.value, `Extensions not found for symbol ${r.value}`];
      break;
    case "fileContainingExtension":
      name = r.value.containingType;
      errorMessage = `Extension not found for symbol ${name} at field ${r.value.extensionNumber}`;
      break;
    default:
      return undefined;
  }
  // 5: NOT_FOUND, as the implementation answers any other unknown name.
  return name in Object.prototype ? { errorResponse: { errorCode: 5, errorMessage } } : undefined;
}

/** Every file reachable from `files` through imports, each once, dependencies included. */
function closure(files: readonly DescFile[]): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.set(f.name, f);
    f.dependencies.forEach(visit);
  };
  files.forEach(visit);
  return [...seen.values()];
}

/**
 * Create the reflection service over `files` (generated `file_*` descriptors)
 * and their imports. Every service they declare is listed, so pass the files
 * of exactly the services the server offers.
 */
export function createReflectionService(files: readonly DescFile[]): ReflectionService {
  let loaded: Promise<ReflectionV1Implementation> | undefined;
  const load = () =>
    (loaded ??= import("@grpc/reflection/build/src/implementations/reflection-v1.js").then((m) => {
      const fileDescriptorProtos = closure(files).map((f) => toBinary(FileDescriptorProtoSchema, f.proto));
      return new m.ReflectionV1Implementation({ embedded: { fileDescriptorProtos } } as unknown as PackageDefinition);
    }));

  const serverReflectionInfo = (call: ServerDuplexStream<Decoded<typeof ServerReflection.method.serverReflectionInfo.input>, ServerReflectionResponse>) => {
    // Answers keep the order of the requests: each waits for the one before.
    let previous: Promise<void> = Promise.resolve();
    call.on("data", (req: Decoded<typeof ServerReflection.method.serverReflectionInfo.input>) => {
      if (req instanceof DecodeFailure) {
        call.emit("error", statusOf(invalid(`malformed request message: ${req.message}`)));
        return;
      }
      previous = previous
        .then(async () => {
          const answer = inheritedName(req) ?? (await load()).handleServerReflectionRequest(toLoaderRequest(req));
          call.write(fromLoaderResponse(req, answer));
        })
        .catch((err: unknown) => void call.emit("error", statusOf(err)));
    });
    call.on("end", () => void previous.then(() => call.end()));
  };
  const implementation: UntypedServiceImplementation = { ServerReflectionInfo: serverReflectionInfo };
  const alphaName = `${file_grpc_reflection_v1alpha_reflection.proto.package}.ServerReflection`;
  return {
    services: [
      { definition: createServiceDefinition(ServerReflection), implementation },
      { definition: createServiceDefinition(ServerReflection, alphaName), implementation },
    ],
  };
}
