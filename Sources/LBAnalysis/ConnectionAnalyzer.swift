import CTuning
import Dispatch
import LBCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Aggregates connection observations into per-Service distributions, per-client backend sets
/// and translated sources. Feed it with `add(_:)` (only aggregate state grows; its bounds are in
/// `AnalysisOptions`), then call `finish(inputs:)`.
///
/// The theory (`README.md` beside this file): a connection whose translated destination differs
/// from its original destination was DNATed, so the original destination is a Service frontend
/// and the translated one the backend; one whose translated source differs from its original
/// source was SNATed, and the translated source stands for the original.
public struct ConnectionAnalyzer: Sendable {
  public let options: AnalysisOptions

  /// A Service frontend: protocol and original destination.
  struct ServiceKey: IndexKey {
    var proto: TransportProtocol
    var frontend: Endpoint
    var bits: UInt64 { frontend.indexBits &* 31 ^ UInt64(proto.rawValue) }
  }

  /// A frontend together with one backend: the unit a DNATed connection is counted under.
  struct RouteKey: IndexKey {
    var service: ServiceKey
    var backend: Endpoint
    var bits: UInt64 { mix(service.bits) ^ backend.indexBits }
  }

  /// A client address within one service.
  struct ClientKey: IndexKey {
    // The address first: 24 bytes instead of 32 with the service before it.
    var address: IPAddress
    var service: Int32
    init(service: Int32, address: IPAddress) {
      self.address = address
      self.service = service
    }
    var bits: UInt64 { address.indexBits &* 0x1_0000_0001 ^ UInt64(UInt32(bitPattern: service)) }
  }

  /// A client with its connections and its first two backends. Most clients use one or two
  /// backends, so one lookup finds the client and its pairs in one cache line; a third backend
  /// on goes to `pairIndex`. (Records stored in the hash slots themselves would save the slot's
  /// cache miss, but at a fill that keeps probes short they took twice the memory and, with
  /// growing and merging touching every record at random, were slower on the 1,000,000-entry
  /// benchmark: 0.74–0.99 s and 172 MB against 0.61–0.79 s and 101 MB.)
  struct ClientRecord: IndexRecord {
    var key: ClientKey
    var connections: Int32
    var backend0: Int32 = -1
    var count0: Int32 = 0
    var backend1: Int32 = -1
    var count1: Int32 = 0

    init(key: ClientKey, connections: Int32) {
      self.key = key
      self.connections = connections
    }

    /// Credits `count` connections to `backend` if one of the two inline pairs is (or can
    /// become) `backend`'s; `false` when both hold other backends.
    @inline(__always)
    mutating func credit(_ backend: Int32, count: Int32) -> Bool {
      if backend0 == backend {
        count0 += count
      } else if backend0 < 0 {
        backend0 = backend
        count0 = count
      } else if backend1 == backend {
        count1 += count
      } else if backend1 < 0 {
        backend1 = backend
        count1 = count
      } else {
        return false
      }
      return true
    }
  }

  /// A (client, backend) pair, both as indices.
  struct PairKey: IndexKey {
    var raw: UInt64
    var bits: UInt64 { raw }
    init(client: Int32, backend: Int32) {
      raw = UInt64(UInt32(bitPattern: client)) << 32 | UInt64(UInt32(bitPattern: backend))
    }
    var client: Int32 { Int32(truncatingIfNeeded: raw >> 32) }
    var backend: Int32 { Int32(truncatingIfNeeded: raw & 0xFFFF_FFFF) }
  }

  struct PairRecord: IndexRecord {
    var key: PairKey
    var count: Int32
  }

  struct AddressKey: IndexKey {
    var address: IPAddress
    var bits: UInt64 { address.indexBits }
  }

  /// An original source behind one translated address.
  struct SourceKey: IndexKey {
    var translated: Int32
    var address: IPAddress
    var bits: UInt64 { address.indexBits &* 0x1_0000_0001 ^ UInt64(UInt32(bitPattern: translated)) }
  }

  struct ServiceTally: Sendable {
    var connections = 0
    var failed = 0
    var sourceTranslated = 0
    var clients = 0
    var droppedClientConnections = 0
  }

  struct BackendTally: Sendable {
    var service: Int32
    var connections = 0
    var failed = 0
    var packets: UInt64 = 0
    var bytes: UInt64 = 0
    var hasCounters = false
    var rtt: [Int64] = []
    var rttSeen = 0
    var httpRequests = 0
    var hasHTTP = false
  }

  struct TranslatedTally: Sendable {
    var connections = 0
    var sources = 0
    var full = false
  }

  // Services, their backends (one per route), their clients and client–backend pairs, as dense
  // indices into flat arrays; see `HashIndex` for why not dictionaries.
  var serviceIndex = HashIndex<ServiceKey>()
  var serviceTallies: [ServiceTally] = []
  var routeIndex = HashIndex<RouteKey>(minimumCapacity: 1024)
  var backendTallies: [BackendTally] = []
  var clientIndex = HashIndex<ClientRecord>(minimumCapacity: 1 << 14)
  /// The clients of connections from readers' IPv4 fast lane, counted by sorting.
  var ipv4Clients = IPv4ClientRun()
  /// The original sources behind translated addresses from the IPv4 fast lane, likewise.
  var ipv4Sources = IPv4SourceRun()
  /// The IPv4 lane's recent routes and translated address, found without hashing a `RouteKey`.
  var ipv4Routes = IPv4RouteCache()
  var lastTranslated: (address: UInt32, index: Int32) = (0, -1)
  /// Client–backend pairs past the two a `ClientRecord` holds.
  var pairIndex = HashIndex<PairRecord>(minimumCapacity: 1 << 10)
  /// The clients of analyzers merged into this one, kept as they were, not looked up: an address
  /// may also be in `clientIndex` or in another part, and `finish` adds them together.
  var mergedParts: [MergedPart] = []
  var translatedIndex = HashIndex<AddressKey>()
  var translatedTallies: [TranslatedTally] = []
  var sourceIndex = HashIndex<SourceKey>(minimumCapacity: 1024)
  var filteredOut = HashIndex<ServiceKey>()
  var connections = 0
  var withoutDNAT = 0

  public init(options: AnalysisOptions = AnalysisOptions()) {
    self.options = options
  }

  /// Adds connections in order, as `add(_:)` one by one would, with the client-table lookups
  /// of the whole batch started first: on a large table each lookup is two cache misses (slot,
  /// then record), which otherwise stall one connection after the other.
  public mutating func add(contentsOf batch: [ConnectionObservation]) {
    guard batch.count > 1 else {
      for observation in batch { add(observation) }
      return
    }
    withUnsafeTemporaryAllocation(of: Int.self, capacity: batch.count) { homes in
      // The slot each connection's client lookup starts at (-1: none); routes already known
      // are found without side effects, a new one waits for `add`.
      for (i, observation) in batch.enumerated() {
        homes[i] = -1
        guard observation.isDestinationTranslated,
          let backend = routeIndex.find(
            RouteKey(
              service: ServiceKey(proto: observation.original.proto, frontend: observation.frontend),
              backend: observation.backend))
        else { continue }
        let key = ClientKey(
          service: backendTallies[Int(backend)].service, address: observation.client.address)
        homes[i] = clientIndex.homeSlot(key)
        clientIndex.prefetch(slot: homes[i])
      }
      for i in 0..<batch.count where homes[i] >= 0 { clientIndex.prefetchRecord(slot: homes[i]) }
    }
    for observation in batch { add(observation) }
  }

  /// Adds one connection.
  public mutating func add(_ observation: ConnectionObservation) {
    connections += 1
    let sourceTranslated = observation.isSourceTranslated
    if sourceTranslated {
      addTranslated(observation.translated.source.address, source: observation.original.source.address)
    }
    guard observation.isDestinationTranslated else {
      withoutDNAT += 1
      return
    }
    let service = ServiceKey(proto: observation.original.proto, frontend: observation.frontend)
    guard let backend = backendIndex(RouteKey(service: service, backend: observation.backend)) else {
      return  // left out by --service
    }
    let o = observation.originalCounters
    let r = observation.replyCounters
    let counted = o.packets != nil || r.packets != nil || o.bytes != nil || r.bytes != nil
    count(
      backend: backend, client: observation.client.address, failed: observation.failed,
      sourceTranslated: sourceTranslated, counted: counted,
      packets: (o.packets ?? 0) &+ (r.packets ?? 0), bytes: (o.bytes ?? 0) &+ (r.bytes ?? 0))
    if let rtt = observation.handshakeRTTNanos {
      backendTallies[Int(backend)].addRTT(rtt, limit: options.maxRTTSamplesPerBackend)
    }
    if let requests = observation.httpRequests {
      backendTallies[Int(backend)].hasHTTP = true
      backendTallies[Int(backend)].httpRequests += requests
    }
  }

  /// Adds one IPv4 connection, as `add(connection.observation(input:))` would; its client goes
  /// to `ipv4Clients`, to be counted by sorting.
  @inline(__always)
  mutating func add(_ connection: IPv4Observation) {
    connections += 1
    let sourceTranslated = connection.isSourceTranslated
    if sourceTranslated {
      // Masqueraded connections come mostly from one node address: the last one is remembered.
      let index: Int32
      if lastTranslated.index >= 0 && lastTranslated.address == connection.translatedSource {
        index = lastTranslated.index
      } else {
        let inserted: Bool
        (index, inserted) = translatedIndex.insert(
          AddressKey(address: .v4(IPv4Address(connection.translatedSource))))
        if inserted { translatedTallies.append(TranslatedTally()) }
        lastTranslated = (connection.translatedSource, index)
      }
      translatedTallies[Int(index)].connections += 1
      ipv4Sources.pending.append(IPv4SourceRun.key(translated: index, source: connection.originalSource))
      if ipv4Sources.pending.count >= IPv4SourceRun.pendingLimit { foldIPv4Sources() }
    }
    guard connection.isDestinationTranslated else {
      withoutDNAT += 1
      return
    }
    let backend: Int32
    if let known = ipv4Routes.find(connection) {
      backend = known
    } else {
      guard let found = backendIndex(Self.route(connection)) else { return }
      ipv4Routes.remember(connection, backend: found)
      backend = found
    }
    let hasOriginal = connection.flags.contains(.originalCounters)
    let hasReply = connection.flags.contains(.replyCounters)
    tally(
      backend: backend, failed: connection.failed, sourceTranslated: sourceTranslated,
      counted: hasOriginal || hasReply,
      packets: (hasOriginal ? connection.originalPackets : 0) &+ (hasReply ? connection.replyPackets : 0),
      bytes: (hasOriginal ? connection.originalBytes : 0) &+ (hasReply ? connection.replyBytes : 0))
    ipv4Clients.pending.append(IPv4ClientRun.key(client: connection.originalSource, backend: backend))
    if ipv4Clients.pending.count >= IPv4ClientRun.pendingLimit { foldIPv4Clients() }
  }

  @inline(__always)
  static func route(_ connection: IPv4Observation) -> RouteKey {
    RouteKey(
      service: ServiceKey(
        proto: connection.proto,
        frontend: Endpoint(
          .v4(IPv4Address(connection.originalDestination)), connection.originalDestinationPort)),
      backend: Endpoint(
        .v4(IPv4Address(connection.translatedDestination)), connection.translatedDestinationPort))
  }

  /// Adds IPv4 connections in order, as `add(_:)` of each one's observation would.
  public mutating func add(contentsOf batch: UnsafeBufferPointer<IPv4Observation>, input: Int) {
    for connection in batch { add(connection) }
  }

  /// Folds the IPv4 clients read on this thread (see `IPv4ClientRun`), so that the sorting
  /// runs in parallel with the other parts'.
  public mutating func finishPart() {
    foldIPv4Clients()
    foldIPv4Sources()
  }

  /// Counts one DNATed connection to `backend` in its service's and its backend's tallies.
  @inline(__always)
  mutating func tally(
    backend: Int32, failed: Bool, sourceTranslated: Bool, counted: Bool, packets: UInt64, bytes: UInt64
  ) {
    // Each tally changed through one access (one uniqueness check of its array, not one per
    // field).
    func update(_ tally: inout BackendTally) -> Int {
      tally.connections += 1
      if failed { tally.failed += 1 }
      if counted {
        tally.hasCounters = true
        tally.packets &+= packets
        tally.bytes &+= bytes
      }
      return Int(tally.service)
    }
    func update(_ tally: inout ServiceTally) {
      tally.connections += 1
      if failed { tally.failed += 1 }
      if sourceTranslated { tally.sourceTranslated += 1 }
    }
    update(&serviceTallies[update(&backendTallies[Int(backend)])])
  }

  /// Counts one DNATed connection to `backend` from `client`.
  @inline(__always)
  mutating func count(
    backend: Int32, client address: IPAddress, failed: Bool, sourceTranslated: Bool, counted: Bool,
    packets: UInt64, bytes: UInt64
  ) {
    tally(
      backend: backend, failed: failed, sourceTranslated: sourceTranslated, counted: counted,
      packets: packets, bytes: bytes)
    let serviceNumber = backendTallies[Int(backend)].service
    guard let client = clientNumber(ClientKey(service: serviceNumber, address: address), count: 1)
    else { return }
    if !clientIndex[client].credit(backend, count: 1) {
      let (index, inserted) = pairIndex.insert(
        PairRecord(key: PairKey(client: client, backend: backend), count: 1))
      if !inserted { pairIndex[index].count += 1 }
    }
  }

  /// The backend (route) index for `key`, made on first use; `nil` when `--service` leaves the
  /// frontend out.
  @inline(__always)
  mutating func backendIndex(_ key: RouteKey) -> Int32? {
    if let known = routeIndex.find(key) { return known }
    if let wanted = options.service, wanted != key.service.frontend {
      _ = filteredOut.insert(key.service)
      return nil
    }
    let (service, newService) = serviceIndex.insert(key.service)
    if newService { serviceTallies.append(ServiceTally()) }
    let (index, _) = routeIndex.insert(key)
    backendTallies.append(BackendTally(service: service))
    return index
  }

  /// The number (index) of the client `key`, made on first use and credited with `count`
  /// connections; `nil` when the service already holds `maxClientsPerService` clients.
  @inline(__always)
  mutating func clientNumber(_ key: ClientKey, count: Int32) -> Int32? {
    switch clientIndex.probe(key) {
    case .found(let client):
      clientIndex[client].connections += count
      return client
    case .vacant(let slot, let tag):
      let service = Int(key.service)
      guard serviceTallies[service].clients < options.maxClientsPerService else {
        serviceTallies[service].droppedClientConnections += Int(count)
        return nil
      }
      serviceTallies[service].clients += 1
      return clientIndex.insert(ClientRecord(key: key, connections: count), slot: slot, tag: tag)
    }
  }

  mutating func addTranslated(_ address: IPAddress, source: IPAddress, connections count: Int = 1) {
    let (index, inserted) = translatedIndex.insert(AddressKey(address: address))
    if inserted { translatedTallies.append(TranslatedTally()) }
    translatedTallies[Int(index)].connections += count
    addSource(source, to: index)
  }

  mutating func addSource(_ source: IPAddress, to index: Int32) {
    guard !translatedTallies[Int(index)].full else { return }
    if sourceIndex.insert(SourceKey(translated: index, address: source)).inserted {
      translatedTallies[Int(index)].sources += 1
      if translatedTallies[Int(index)].sources >= options.maxSourcesPerTranslatedAddress {
        translatedTallies[Int(index)].full = true
      }
    }
  }

  /// Adds everything `other` counted, as if its connections had been added here. Readers that
  /// split one input over several threads give each an analyzer and merge them at the end.
  ///
  /// Services, backends and translated sources are merged at once; clients are only kept, in
  /// `other`'s own tables (`mergedParts`, with maps from its service and backend numbers to
  /// these), and joined with the clients of the same address in `finish`, service by service on
  /// all processors, where each service's clients fit in a cache instead of a table of every
  /// client.
  ///
  /// Totals are exact. Only at the per-service client cap can the clients kept differ from a
  /// single pass (each part fills the cap in its own order).
  /// Locations are not kept, so `lineOffset` does not matter here.
  public mutating func merge(_ other: ConnectionAnalyzer, lineOffset: Int = 0) {
    // Folding moves clients past the cap into the service tallies' dropped connections.
    var other = other
    other.foldIPv4Clients()
    other.foldIPv4Sources()
    connections += other.connections
    withoutDNAT += other.withoutDNAT
    for key in other.filteredOut.keys { _ = filteredOut.insert(key) }

    var serviceMap = [Int32](repeating: 0, count: other.serviceIndex.count)
    for (i, key) in other.serviceIndex.keys.enumerated() {
      let (index, inserted) = serviceIndex.insert(key)
      if inserted { serviceTallies.append(ServiceTally()) }
      serviceMap[i] = index
      let theirs = other.serviceTallies[i]
      serviceTallies[Int(index)].connections += theirs.connections
      serviceTallies[Int(index)].failed += theirs.failed
      serviceTallies[Int(index)].sourceTranslated += theirs.sourceTranslated
      serviceTallies[Int(index)].droppedClientConnections += theirs.droppedClientConnections
    }
    var backendMap = [Int32](repeating: 0, count: other.routeIndex.count)
    for (i, key) in other.routeIndex.keys.enumerated() {
      let theirs = other.backendTallies[i]
      let (index, inserted) = routeIndex.insert(key)
      if inserted { backendTallies.append(BackendTally(service: serviceMap[Int(theirs.service)])) }
      backendMap[i] = index
      backendTallies[Int(index)].connections += theirs.connections
      backendTallies[Int(index)].failed += theirs.failed
      backendTallies[Int(index)].packets &+= theirs.packets
      backendTallies[Int(index)].bytes &+= theirs.bytes
      backendTallies[Int(index)].hasCounters = backendTallies[Int(index)].hasCounters || theirs.hasCounters
      for sample in theirs.rtt {
        backendTallies[Int(index)].addRTT(sample, limit: options.maxRTTSamplesPerBackend)
      }
      // Samples the other analyzer saw but did not keep still count as seen.
      backendTallies[Int(index)].rttSeen += theirs.rttSeen - theirs.rtt.count
      backendTallies[Int(index)].httpRequests += theirs.httpRequests
      backendTallies[Int(index)].hasHTTP = backendTallies[Int(index)].hasHTTP || theirs.hasHTTP
    }

    // Their clients stay in their tables, with maps to this analyzer's numbers; so do the
    // parts they had merged, their maps composed with these.
    mergedParts.append(
      MergedPart(
        clients: other.clientIndex, pairs: other.pairIndex, ipv4: other.ipv4Clients, serviceMap: serviceMap,
        backendMap: backendMap))
    for var part in other.mergedParts {
      part.serviceMap = part.serviceMap.map { serviceMap[Int($0)] }
      part.backendMap = part.backendMap.map { backendMap[Int($0)] }
      mergedParts.append(part)
    }

    var translatedMap = [Int32](repeating: 0, count: other.translatedIndex.count)
    for (i, key) in other.translatedIndex.keys.enumerated() {
      let (index, inserted) = translatedIndex.insert(key)
      if inserted { translatedTallies.append(TranslatedTally()) }
      translatedMap[i] = index
      translatedTallies[Int(index)].connections += other.translatedTallies[i].connections
      if other.translatedTallies[i].full { translatedTallies[Int(index)].full = true }
    }
    for key in other.sourceIndex.keys {
      addSource(key.address, to: translatedMap[Int(key.translated)])
    }
    // Their folded IPv4 sources, in this analyzer's numbers, to be folded with these.
    for key in other.ipv4Sources.keys {
      ipv4Sources.pending.append(
        IPv4SourceRun.key(
          translated: translatedMap[Int(IPv4SourceRun.translated(key))], source: IPv4SourceRun.source(key)))
    }
  }

  /// Finishes the analysis: distributions, stickiness, findings.
  public func finish(inputs: [InputSummary]) -> AnalysisResult {
    var folded = self
    folded.foldIPv4Clients()
    folded.foldIPv4Sources()
    return folded.finishFolded(inputs: inputs)
  }

  /// `finish` once every IPv4 client run is folded.
  func finishFolded(inputs: [InputSummary]) -> AnalysisResult {
    // Backends and clients (own and merged) grouped by service.
    var backendsOf = [[Int32]](repeating: [], count: serviceIndex.count)
    for (b, tally) in backendTallies.enumerated() { backendsOf[Int(tally.service)].append(Int32(b)) }
    var clientsOf = [[Int32]](repeating: [], count: serviceIndex.count)
    for c in 0..<Int32(clientIndex.count) { clientsOf[Int(clientIndex[c].key.service)].append(c) }
    // Merged clients as (part, client) in one integer: part << 32 | client.
    var mergedOf = [[Int64]](repeating: [], count: serviceIndex.count)
    for (p, part) in mergedParts.enumerated() {
      for (c, record) in part.clients.records.enumerated() {
        mergedOf[Int(part.serviceMap[Int(record.key.service)])].append(Int64(p) << 32 | Int64(c))
      }
    }
    // Pairs beyond the two each client record holds, grouped by client.
    let ownPairs = PairsByClient(clients: clientIndex.count, pairs: pairIndex.records)
    let partPairs = mergedParts.map { PairsByClient(clients: $0.clients.count, pairs: $0.pairs.records) }

    // Each service's backends in address order (the contract's), and every backend's position
    // in its service's list.
    var position = [Int32](repeating: 0, count: backendTallies.count)
    for s in backendsOf.indices {
      backendsOf[s].sort { routeIndex.keys[Int($0)].backend < routeIndex.keys[Int($1)].backend }
      for (i, id) in backendsOf[s].enumerated() { position[Int(id)] = Int32(i) }
    }
    // The folded IPv4 lists of each service: own, and each merged part's under its own number
    // for the service (`inverse`), with its backend map.
    // (`positionOf`: their backend numbers to positions in this analyzer's service lists.)
    var runSources: [(run: IPv4ClientRun, inverse: [Int32], positionOf: [Int32])] = []
    if !ipv4Clients.byService.isEmpty {
      runSources.append((ipv4Clients, Array(0..<Int32(ipv4Clients.byService.count)), position))
    }
    for part in mergedParts where !part.ipv4.byService.isEmpty {
      var inverse = [Int32](repeating: -1, count: serviceIndex.count)
      for (theirs, ours) in part.serviceMap.enumerated() { inverse[Int(ours)] = Int32(theirs) }
      runSources.append((part.ipv4, inverse, part.backendMap.map { position[Int($0)] }))
    }
    let runLists = runSources

    // Services are independent: judge them on all processors.
    let slots = UnsafeMutableBufferPointer<ServiceResult?>.allocate(capacity: serviceIndex.count)
    slots.initialize(repeating: nil)
    defer {
      slots.deinitialize()
      slots.deallocate()
    }
    nonisolated(unsafe) let shared = slots
    let readOnly = (backendsOf, clientsOf, mergedOf, ownPairs, partPairs, position)
    DispatchQueue.concurrentPerform(iterations: serviceIndex.count) { s in
      var runs: RunLists = []
      for source in runLists where s < source.inverse.count {
        let theirs = Int(source.inverse[s])
        if theirs >= 0 && theirs < source.run.byService.count && !source.run.byService[theirs].isEmpty {
          runs.append((source.run.byService[theirs], source.positionOf))
        }
      }
      let clients = clientGroup(
        own: readOnly.1[s], runs: runs, merged: readOnly.2[s], ownPairs: readOnly.3,
        partPairs: readOnly.4, position: readOnly.5)
      shared[s] = serviceResult(
        key: serviceIndex.keys[s], tally: serviceTallies[s], backends: readOnly.0[s], clients: clients)
    }
    var results = slots.compactMap { $0 }
    results.sort { lhs, rhs in
      switch (lhs.name, rhs.name) {
      case (let l?, let r?) where l != r: return l < r
      case (nil, _?): return false
      case (_?, nil): return true
      default:
        let l = lhs.frontends.first ?? Endpoint(.v4(IPv4Address(0)), 0)
        let r = rhs.frontends.first ?? Endpoint(.v4(IPv4Address(0)), 0)
        return (l, lhs.proto) < (r, rhs.proto)
      }
    }

    // Each translated address's sources from both lanes; an address can be in both.
    var sourcesOf = [[IPAddress]](repeating: [], count: translatedIndex.count)
    for key in sourceIndex.keys { sourcesOf[Int(key.translated)].append(key.address) }
    for key in ipv4Sources.keys {
      sourcesOf[Int(IPv4SourceRun.translated(key))].append(.v4(IPv4Address(IPv4SourceRun.source(key))))
    }
    var translatedResults: [TranslatedSourceResult] = []
    for (t, key) in translatedIndex.keys.enumerated() {
      let tally = translatedTallies[t]
      var sources: [IPAddress] = []
      for source in sourcesOf[t].sorted() where sources.last != source { sources.append(source) }
      let full = tally.full || sources.count > options.maxSourcesPerTranslatedAddress
      translatedResults.append(
        TranslatedSourceResult(
          address: key.address,
          originalSourceCount: min(sources.count, options.maxSourcesPerTranslatedAddress),
          originalSourceCountIsLowerBound: full, connections: tally.connections,
          estimatedHosts: nil, exampleSources: Array(sources.prefix(5))))
    }
    translatedResults.sort { $0.address < $1.address }

    var result = AnalysisResult(
      inputs: inputs, services: results, translatedSources: translatedResults, findings: [],
      connections: connections, connectionsWithoutDNAT: withoutDNAT,
      servicesFilteredOut: filteredOut.count)
    result.findings = Diagnosis(options: options).findings(for: result)
    return result
  }

  /// The clients of a merged analyzer, in its own tables, with the maps from its service and
  /// backend numbers to the merging analyzer's.
  struct MergedPart: Sendable {
    var clients: HashIndex<ClientRecord>
    var pairs: HashIndex<PairRecord>
    /// Its folded IPv4 clients, in its backend numbers.
    var ipv4: IPv4ClientRun
    var serviceMap: [Int32]
    var backendMap: [Int32]
  }

  /// Client–backend pairs grouped by client (counting sort): client `c`'s are
  /// `pairs[start[c]..<start[c + 1]]`.
  struct PairsByClient: Sendable {
    var start: [Int32]
    var pairs: [(backend: Int32, count: Int32)]

    init(clients: Int, pairs list: [PairRecord]) {
      start = [Int32](repeating: 0, count: clients + 1)
      for pair in list { start[Int(pair.key.client) + 1] += 1 }
      for c in 0..<clients { start[c + 1] += start[c] }
      var fill = start
      pairs = [(backend: Int32, count: Int32)](repeating: (0, 0), count: list.count)
      for pair in list {
        let c = Int(pair.key.client)
        pairs[Int(fill[c])] = (pair.key.backend, pair.count)
        fill[c] += 1
      }
    }

    /// Starts loading where `client`'s pairs begin.
    @inline(__always)
    func prefetch(client: Int32) {
      start.withUnsafeBufferPointer { lbscope_prefetch($0.baseAddress.map { $0 + Int(client) }) }
    }

    subscript(client: Int32) -> ArraySlice<(backend: Int32, count: Int32)> {
      pairs[Int(start[Int(client)])..<Int(start[Int(client) + 1])]
    }
  }

  /// One service's clients, each address once, with its connections per backend position.
  struct ClientGroup {
    var addresses: [IPAddress] = []
    var connections: [Int32] = []
    /// Client `i`'s backends: `counts[start[i]..<start[i + 1]]`, by position, each once.
    var start: [Int32] = [0]
    var counts: [(index: Int32, count: Int32)] = []
    /// Connections of merged clients left out at `maxClientsPerService`.
    var dropped = 0

    var count: Int { addresses.count }

    func backends(_ i: Int) -> ArraySlice<(index: Int32, count: Int32)> {
      counts[Int(start[i])..<Int(start[i + 1])]
    }
  }

  /// The clients of one service: its own (`own`, indices into `clientIndex`), each a different
  /// address, joined with those of folded IPv4 runs (`runs`, each in ascending client order)
  /// and those merged in from other analyzers (`merged`, part << 32 | index into that part's
  /// clients).
  func clientGroup(
    own: [Int32], runs: RunLists, merged: [Int64], ownPairs: PairsByClient, partPairs: [PairsByClient],
    position: [Int32]
  ) -> ClientGroup {
    if own.isEmpty && merged.isEmpty { return clientGroup(runs: runs) }
    var group = ClientGroup()
    let runEntries = runs.reduce(0) { $0 + $1.entries.count }
    let capacity = own.count + merged.count + runEntries
    group.addresses.reserveCapacity(capacity)
    group.connections.reserveCapacity(capacity)
    // (client, backend position, connections), in any order; sorted into `counts` below.
    var raw: [(client: Int32, index: Int32, count: Int32)] = []
    raw.reserveCapacity(capacity * 2)
    /// `record`'s backends (already in this analyzer's numbers) and its `extra` pairs (in
    /// `backendMap`'s, when given).
    func collect(
      _ i: Int32, _ record: ClientRecord, _ extra: ArraySlice<(backend: Int32, count: Int32)>,
      backendMap: [Int32]? = nil
    ) {
      if record.backend0 >= 0 { raw.append((i, position[Int(record.backend0)], record.count0)) }
      if record.backend1 >= 0 { raw.append((i, position[Int(record.backend1)], record.count1)) }
      for pair in extra {
        let backend = backendMap.map { $0[Int(pair.backend)] } ?? pair.backend
        raw.append((i, position[Int(backend)], pair.count))
      }
    }
    // The records are scattered over tables of every client: each is a cache miss, so the
    // loads are started `ahead` clients early.
    let ahead = 12
    for (k, c) in own.enumerated() {
      if k + ahead < own.count {
        clientIndex.prefetch(index: own[k + ahead])
        ownPairs.prefetch(client: own[k + ahead])
      }
      let record = clientIndex[c]
      let i = Int32(group.addresses.count)
      group.addresses.append(record.key.address)
      group.connections.append(record.connections)
      collect(i, record, ownPairs[c])
    }
    // Addresses can repeat between the tables and the runs only when both have clients here;
    // the runs alone are joined by their order.
    let limit = max(options.maxClientsPerService, own.count)
    let joining = (!own.isEmpty && runEntries > 0) || !merged.isEmpty
    var local = HashIndex<AddressKey>(minimumCapacity: joining ? capacity : 1)
    if joining {
      for address in group.addresses { _ = local.insert(AddressKey(address: address)) }
    }
    // The runs' clients in address order, each with its entries from every list.
    var walk = ClientWalk(runs)
    var entries: [(index: Int32, count: Int32)] = []
    while true {
      entries.removeAll(keepingCapacity: true)
      guard let (client, total) = walk.next(appendingTo: &entries) else { break }
      let address = IPAddress.v4(IPv4Address(client))
      var i = Int32(group.addresses.count)
      if joining, case .found(let index) = local.probe(AddressKey(address: address)) {
        i = index
        group.connections[Int(i)] += total
      } else {
        guard group.addresses.count < limit else {
          group.dropped += Int(total)
          continue
        }
        if joining { _ = local.insert(AddressKey(address: address)) }
        group.addresses.append(address)
        group.connections.append(total)
      }
      for entry in entries { raw.append((i, entry.index, entry.count)) }
    }
    if !merged.isEmpty {
      // Part by part (`merged` lists them in part order), each part's tables taken once: a
      // copy per client would retain and release the same buffers from every thread.
      var run = 0
      while run < merged.count {
        let p = Int(merged[run] >> 32)
        var end = run
        while end < merged.count && Int(merged[end] >> 32) == p { end += 1 }
        let records = mergedParts[p].clients
        let backendMap = mergedParts[p].backendMap
        let pairs = partPairs[p]
        for k in run..<end {
          if k + ahead < end {
            let next = Int32(truncatingIfNeeded: merged[k + ahead])
            records.prefetch(index: next)
            pairs.prefetch(client: next)
          }
          let c = Int32(truncatingIfNeeded: merged[k])
          var record = records[c]
          if record.backend0 >= 0 { record.backend0 = backendMap[Int(record.backend0)] }
          if record.backend1 >= 0 { record.backend1 = backendMap[Int(record.backend1)] }
          let key = AddressKey(address: record.key.address)
          let i: Int32
          switch local.probe(key) {
          case .found(let index):
            i = index
            group.connections[Int(i)] += record.connections
          case .vacant(let slot, let tag):
            guard group.addresses.count < limit else {
              group.dropped += Int(record.connections)
              continue
            }
            i = local.insert(key, slot: slot, tag: tag)
            group.addresses.append(record.key.address)
            group.connections.append(record.connections)
          }
          collect(i, record, pairs[c], backendMap: backendMap)
        }
        run = end
      }
    }

    // Counting sort by client, then each client's entries by position, repeats added together.
    let n = group.addresses.count
    group.start = [Int32](repeating: 0, count: n + 1)
    for entry in raw { group.start[Int(entry.client) + 1] += 1 }
    for i in 0..<n { group.start[i + 1] += group.start[i] }
    var fill = group.start
    group.counts = [(index: Int32, count: Int32)](repeating: (0, 0), count: raw.count)
    for entry in raw {
      group.counts[Int(fill[Int(entry.client)])] = (entry.index, entry.count)
      fill[Int(entry.client)] += 1
    }
    var write = 0
    var newStart = group.start
    for i in 0..<n {
      let lower = Int(group.start[i])
      let upper = Int(group.start[i + 1])
      newStart[i] = Int32(write)
      if upper - lower > 1 {
        group.counts[lower..<upper].sort { $0.index < $1.index }
      }
      var j = lower
      while j < upper {
        var entry = group.counts[j]
        j += 1
        while j < upper && group.counts[j].index == entry.index {
          entry.count += group.counts[j].count
          j += 1
        }
        group.counts[write] = entry
        write += 1
      }
    }
    newStart[n] = Int32(write)
    group.counts.removeLast(group.counts.count - write)
    group.start = newStart
    return group
  }

  /// `clientGroup` of a service whose clients are all in IPv4 runs (every client of a table
  /// read through the fast lane): the lists merged by client straight into the group, which then
  /// needs no join by address and no sort by client.
  func clientGroup(runs: RunLists) -> ClientGroup {
    var group = ClientGroup()
    let runEntries = runs.reduce(0) { $0 + $1.entries.count }
    group.addresses.reserveCapacity(runEntries)
    group.connections.reserveCapacity(runEntries)
    group.start.reserveCapacity(runEntries + 1)
    group.counts.reserveCapacity(runEntries)
    var walk = ClientWalk(runs)
    while true {
      // The client's entries from every list appended to the group's.
      let first = group.counts.count
      guard let (client, total) = walk.next(appendingTo: &group.counts) else { break }
      guard group.addresses.count < options.maxClientsPerService else {
        group.counts.removeSubrange(first...)
        group.dropped += Int(total)
        continue
      }
      group.addresses.append(.v4(IPv4Address(client)))
      group.connections.append(total)
      // In position order, the same backend from several lists added together.
      if group.counts.count - first > 1 {
        group.counts[first...].sort { $0.index < $1.index }
        var write = first
        for j in first..<group.counts.count {
          if j > first && group.counts[j].index == group.counts[write - 1].index {
            group.counts[write - 1].count += group.counts[j].count
          } else {
            group.counts[write] = group.counts[j]
            write += 1
          }
        }
        group.counts.removeSubrange(write...)
      }
      group.start.append(Int32(group.counts.count))
    }
    return group
  }

  func serviceResult(
    key: ServiceKey, tally: ServiceTally, backends backendIDs: [Int32], clients group: ClientGroup
  ) -> ServiceResult {
    let total = tally.connections
    // Backends come sorted by address, as the contract asks; the distribution follows that order.
    let k = backendIDs.count
    var backends: [BackendResult] = []
    for id in backendIDs {
      let b = backendTallies[Int(id)]
      var result = BackendResult(
        address: routeIndex.keys[Int(id)].backend, pod: nil, expectedShare: nil,
        expectedShareExternal: nil, connections: b.connections,
        observedShare: total > 0 ? Double(b.connections) / Double(total) : nil,
        shareInterval: Statistics.wilsonInterval(successes: b.connections, trials: total),
        failedConnections: b.failed, packets: b.hasCounters ? b.packets : nil,
        bytes: b.hasCounters ? b.bytes : nil, pinnedClients: nil)
      result.handshakeRTT = b.percentiles
      result.httpRequests = b.hasHTTP ? b.httpRequests : nil
      backends.append(result)
    }
    let expected = [Double](repeating: k > 0 ? 1 / Double(k) : 0, count: k)

    // Stickiness and totals over every client; results only for the busiest `clientsKept`.
    // Every backend is expected the same share, so a verdict depends only on the client's
    // connections and its main backend's: clients alike share one computation.
    var totals = ClientTotals()
    var sticky = [Bool?](repeating: nil, count: group.count)
    var stickyP = [Double?](repeating: nil, count: group.count)
    // Verdicts by (n, m): in a flat table for the usual few connections, else a dictionary.
    let few = 64
    var knownFew = [(Bool?, Double?)?](repeating: nil, count: group.count > 0 ? few * (few + 1) / 2 : 0)
    var known: [UInt64: (Bool?, Double?)] = [:]
    for i in 0..<group.count {
      let n = Int(group.connections[i])
      let list = group.backends(i)
      var main = 0
      for entry in list where Int(entry.count) > main { main = Int(entry.count) }
      let verdict: (Bool?, Double?)
      if n < few && main <= n {
        let slot = n * (n + 1) / 2 + main
        if let seen = knownFew[slot] {
          verdict = seen
        } else {
          verdict = stickiness(connections: n, counts: Array(list), expected: expected)
          knownFew[slot] = verdict
        }
      } else {
        let memo = UInt64(UInt32(truncatingIfNeeded: n)) << 32 | UInt64(UInt32(truncatingIfNeeded: main))
        if let seen = known[memo] {
          verdict = seen
        } else {
          verdict = stickiness(connections: n, counts: Array(list), expected: expected)
          known[memo] = verdict
        }
      }
      (sticky[i], stickyP[i]) = verdict
      totals.clients += 1
      totals.connections += n
      if sticky[i] == true {
        totals.stickyClients += 1
        totals.stickyConnections += n
      }
    }
    let kept = busiest(group, limit: options.clientsKept)
    var clients: [ClientResult] = []
    clients.reserveCapacity(kept.count)
    for i in kept {
      clients.append(
        ClientResult(
          address: group.addresses[i], connections: Int(group.connections[i]),
          backends: group.backends(i).map {
            (backend: backends[Int($0.index)].address, connections: Int($0.count))
          },
          sticky: sticky[i], stickyPValue: stickyP[i]))
    }

    let distribution = DistributionJudge(options: options).judge(
      counts: backends.map { $0.connections }, expectedShares: expected,
      expectation: "equal split over the \(k) observed backends")

    return ServiceResult(
      name: nil, frontends: [key.frontend], proto: key.proto, affinity: nil,
      externalTrafficPolicy: nil, backends: backends, clients: clients,
      clientTotals: totals, droppedClientConnections: tally.droppedClientConnections + group.dropped,
      distribution: distribution, connections: total, failedConnections: tally.failed,
      sourceTranslatedConnections: tally.sourceTranslated)
  }

  /// Positions in `group` of the `limit` busiest clients (all when `limit` is 0), in report
  /// order: connections descending, then address. Only candidates at or above the cut-off count
  /// are sorted, so a service with a million clients does not sort a million results.
  func busiest(_ group: ClientGroup, limit: Int) -> [Int] {
    let counts = group.connections
    var candidates = Array(0..<group.count)
    if limit > 0 && group.count > limit {
      // The cut-off: the largest count c with at least `limit` clients at c or more, from a
      // histogram (an array for the usual small counts, a dictionary for the rest).
      var small = [Int](repeating: 0, count: 1024)
      var large: [Int32: Int] = [:]
      for n in counts {
        if n < 1024 { small[Int(n)] += 1 } else { large[n, default: 0] += 1 }
      }
      var atLeast = 0
      var cutoff: Int32 = 0
      search: do {
        for n in large.keys.sorted(by: >) {
          atLeast += large[n] ?? 0
          if atLeast >= limit {
            cutoff = n
            break search
          }
        }
        for n in stride(from: 1023, through: 0, by: -1) {
          atLeast += small[n]
          if atLeast >= limit {
            cutoff = Int32(n)
            break search
          }
        }
      }
      candidates = candidates.filter { counts[$0] >= cutoff }
    }
    // Sorted by integer keys in the report's order: `IPAddress`'s order is the family, then
    // the address bits.
    var keys = candidates.map { i -> ClientSortKey in
      let descending = UInt64(UInt32.max - UInt32(clamping: counts[i])) << 1
      switch group.addresses[i] {
      case .v4(let a): return (descending, UInt64(a.value), 0, i)
      case .v6(let a): return (descending | 1, a.high, a.low, i)
      }
    }
    let precedes: (ClientSortKey, ClientSortKey) -> Bool = {
      ($0.order, $0.high, $0.low) < ($1.order, $1.high, $1.low)
    }
    if limit > 0 && keys.count > limit {
      // Ties at the cut-off can be most of the clients: select the first `limit`, sort those.
      select(&keys, first: limit, by: precedes)
      keys.removeLast(keys.count - limit)
    }
    keys.sort(by: precedes)
    return keys.map(\.index)
  }

  typealias ClientSortKey = (order: UInt64, high: UInt64, low: UInt64, index: Int)

  /// Reorders `keys` so that its first `k` elements are the `k` least (in any order): Hoare's
  /// selection, with the median of three as pivot. Keys must be distinct.
  func select(_ keys: inout [ClientSortKey], first k: Int, by less: (ClientSortKey, ClientSortKey) -> Bool) {
    var lower = 0
    var upper = keys.count - 1
    while lower < upper {
      let middle = lower + (upper - lower) / 2
      // Median of three at `middle`.
      if less(keys[middle], keys[lower]) { keys.swapAt(middle, lower) }
      if less(keys[upper], keys[lower]) { keys.swapAt(upper, lower) }
      if less(keys[upper], keys[middle]) { keys.swapAt(upper, middle) }
      let pivot = keys[middle]
      var i = lower
      var j = upper
      while i <= j {
        while less(keys[i], pivot) { i += 1 }
        while less(pivot, keys[j]) { j -= 1 }
        if i <= j {
          keys.swapAt(i, j)
          i += 1
          j -= 1
        }
      }
      // keys[lower...j] ≤ pivot ≤ keys[i...upper]; between them, equal to the pivot.
      if k - 1 <= j {
        upper = j
      } else if k - 1 >= i {
        lower = i
      } else {
        return
      }
    }
  }

  /// Whether one client is held to one backend beyond chance.
  ///
  /// With n connections and its main backend b holding m of them, the chance of a concentration
  /// at least that strong without affinity is P(X ≥ m) for X ~ Binomial(n, p_b), times the number
  /// of backends (Bonferroni: any backend could have been the main one). The client is sticky when
  /// that chance is below `stickyAlpha` and b holds at least `stickyDominance` of its connections;
  /// unknown (`nil`) when even n of n on one backend would not be significant, or with one backend.
  func stickiness(connections n: Int, counts: [(index: Int32, count: Int32)], expected: [Double])
    -> (Bool?, Double?)
  {
    let k = expected.count
    guard k > 1, n > 0, let main = counts.max(by: { $0.count < $1.count }) else { return (nil, nil) }
    let largestShare = expected.max() ?? 1
    let best = Double(k) * Statistics.binomialUpperTail(n: n, k: n, p: largestShare)
    if best >= options.stickyAlpha { return (nil, nil) }
    let m = Int(main.count)
    let p = min(1, Double(k) * Statistics.binomialUpperTail(n: n, k: m, p: expected[Int(main.index)]))
    let dominant = Double(m) >= options.stickyDominance * Double(n)
    return (p < options.stickyAlpha && dominant, p)
  }
}

extension ConnectionAnalyzer.BackendTally {
  /// Keeps an RTT sample; past `limit`, reservoir sampling (Vitter's algorithm R) with a fixed
  /// linear congruential sequence, so the same input gives the same percentiles.
  mutating func addRTT(_ nanos: Int64, limit: Int) {
    rttSeen += 1
    if rtt.count < limit {
      rtt.append(nanos)
      return
    }
    let r = UInt64(rttSeen) &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    let slot = Int((r >> 17) % UInt64(rttSeen))
    if slot < limit { rtt[slot] = nanos }
  }

  /// Nearest-rank p50, p90, p99 in milliseconds.
  var percentiles: LatencyPercentiles? {
    guard !rtt.isEmpty else { return nil }
    let sorted = rtt.sorted()
    func rank(_ q: Double) -> Double {
      let i = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
      return Double(sorted[i]) / 1e6
    }
    return LatencyPercentiles(
      p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), samples: sorted.count, total: rttSeen)
  }
}

/// Judges a distribution of counts against expected shares.
public struct DistributionJudge: Sendable {
  public let options: AnalysisOptions
  public init(options: AnalysisOptions) { self.options = options }

  /// `counts[i]` was observed where `expectedShares[i]` of the total was expected.
  public func judge(counts: [Int], expectedShares: [Double], expectation: String) -> Distribution {
    var d = Distribution()
    d.expectation = expectation
    let total = counts.reduce(0, +)
    d.total = total
    d.backendCount = counts.count
    guard !counts.isEmpty, total > 0 else {
      d.verdict = "no connections"
      return d
    }
    let values = counts.map(Double.init)
    d.coefficientOfVariation = Statistics.coefficientOfVariation(values)
    d.gini = Statistics.gini(values)
    if let maxCount = counts.max(), let minCount = counts.min() {
      d.maxMinRatio = minCount > 0 ? Double(maxCount) / Double(minCount) : nil
      d.maxMeanRatio = Double(maxCount) / (Double(total) / Double(counts.count))
    }
    guard counts.count > 1 else {
      d.verdict = "one backend: nothing to balance"
      return d
    }
    var chi2 = 0.0
    var minExpected = Double.infinity
    for (count, share) in zip(counts, expectedShares) where share > 0 {
      let e = share * Double(total)
      minExpected = min(minExpected, e)
      chi2 += (Double(count) - e) * (Double(count) - e) / e
    }
    let df = expectedShares.filter { $0 > 0 }.count - 1
    d.chiSquare = chi2
    d.degreesOfFreedom = df
    d.pValue = Statistics.chiSquareUpperTail(chi2, degreesOfFreedom: df)
    d.pValueMethod = SmallSampleTest.Method.chiSquare.rawValue
    d.effectSize = (chi2 / Double(total)).squareRoot()

    // Connections to a backend the expectation gives no share cannot happen under it: the fit
    // is rejected outright (p = 0, χ² infinite, reported as null). Whether that matters is their
    // share of all connections, reported as w = √(share) so the same --min-effect applies
    // (w 0.1: 1% of the connections); a few stray entries from before a rules change do not.
    let stray = zip(counts, expectedShares).reduce(0) { $0 + ($1.1 > 0 ? 0 : $1.0) }
    if stray > 0 {
      let strayShare = Double(stray) / Double(total)
      d.chiSquare = nil
      d.pValue = 0
      d.pValueMethod = SmallSampleTest.Method.exact.rawValue
      d.effectSize = strayShare.squareRoot()
      d.judged = true
      d.imbalanced = (d.effectSize ?? 0) >= options.minEffectSize
      let what =
        "\(stray) of \(total) connections (\(NumberText.percent(strayShare))) reached backends that \(expectation) gives no share, impossible under it (p = 0)"
      d.verdict =
        d.imbalanced
        ? "imbalanced: \(what); w = \(NumberText.decimal(d.effectSize ?? 0, places: 4)) (at least \(NumberText.decimal(options.minEffectSize, places: 4)))"
        : "balanced in practice: \(what), but too few to matter (w = \(NumberText.decimal(d.effectSize ?? 0, places: 4)) < \(NumberText.decimal(options.minEffectSize, places: 4)))"
      return d
    }

    // Small samples: the exact multinomial test (or a seeded simulation of it) instead of the
    // χ² approximation. Too few to judge only when even the least likely outcome (every
    // connection on the backend with the smallest share) would not reach α.
    if minExpected < options.minExpectedPerBackend {
      let positive = zip(counts, expectedShares).filter { $0.1 > 0 }
      let shareSum = positive.reduce(0) { $0 + $1.1 }
      let small = SmallSampleTest.pValue(counts: positive.map(\.0), shares: positive.map { $0.1 / shareSum })
      d.pValue = small.p
      d.pValueMethod = small.method.rawValue
      d.simulations = small.simulations
      let smallestShare = positive.map { $0.1 / shareSum }.min() ?? 1
      guard Double(total) * log(smallestShare) < log(options.alpha) else {
        d.verdict =
          "too few connections to judge (\(total) over \(counts.count) backends: even all of them on one backend would not reach α = \(NumberText.decimal(options.alpha, places: 4)))"
        return d
      }
    }
    d.judged = true
    let significant = (d.pValue ?? 1) < options.alpha
    let method =
      d.pValueMethod == SmallSampleTest.Method.chiSquare.rawValue ? "" : ", \(d.pValueMethod ?? "")"
    let practical = (d.effectSize ?? 0) >= options.minEffectSize
    d.imbalanced = significant && practical
    if d.imbalanced {
      d.verdict =
        "imbalanced: \(NumberText.pValue(d.pValue ?? 0))\(method) (α = \(NumberText.decimal(options.alpha, places: 4))) and effect size w = \(NumberText.decimal(d.effectSize ?? 0, places: 4)) (at least \(NumberText.decimal(options.minEffectSize, places: 4)))"
    } else if significant {
      d.verdict =
        "balanced in practice: the deviation is significant (\(NumberText.pValue(d.pValue ?? 0))\(method)) but small (w = \(NumberText.decimal(d.effectSize ?? 0, places: 4)) < \(NumberText.decimal(options.minEffectSize, places: 4)))"
    } else {
      d.verdict = "balanced: consistent with \(expectation) (\(NumberText.pValue(d.pValue ?? 1))\(method))"
    }
    return d
  }
}

extension ConnectionAnalyzer: ObservationSink {
  public func makeEmpty() -> ConnectionAnalyzer { ConnectionAnalyzer(options: options) }
}

/// The backend (route) numbers of recent IPv4 routes, by the route's addresses, ports and
/// protocol packed in two words: 1,024 slots, direct-mapped. A table has a few hundred or
/// thousand routes against a million lines, so nearly every line finds its route here with two
/// compares, where `routeIndex` builds and hashes a `RouteKey` of address enums. Only routes
/// `routeIndex` has (not those `--service` leaves out) are remembered.
struct IPv4RouteCache: Sendable {
  struct Entry: Sendable {
    var addresses: UInt64 = 0
    var rest: UInt64 = 0
    var backend: Int32 = -1
  }

  static let slots = 1024
  var entries = [Entry](repeating: Entry(), count: IPv4RouteCache.slots)

  @inline(__always)
  static func key(_ c: IPv4Observation) -> (addresses: UInt64, rest: UInt64, slot: Int) {
    let addresses = UInt64(c.originalDestination) << 32 | UInt64(c.translatedDestination)
    let rest =
      UInt64(c.originalDestinationPort) << 32 | UInt64(c.translatedDestinationPort) << 8
      | UInt64(c.proto.rawValue)
    let slot = Int(
      truncatingIfNeeded: ((addresses ^ rest &* 0x9E37_79B9_7F4A_7C15) &* 0xBF58_476D_1CE4_E5B9) >> 54)
    return (addresses, rest, slot)
  }

  @inline(__always)
  func find(_ c: IPv4Observation) -> Int32? {
    let (addresses, rest, slot) = Self.key(c)
    let entry = entries[slot]
    guard entry.backend >= 0, entry.addresses == addresses, entry.rest == rest else { return nil }
    return entry.backend
  }

  @inline(__always)
  mutating func remember(_ c: IPv4Observation, backend: Int32) {
    let (addresses, rest, slot) = Self.key(c)
    entries[slot] = Entry(addresses: addresses, rest: rest, backend: backend)
  }
}
