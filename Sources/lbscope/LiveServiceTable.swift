import LBConntrack
import LBCore

/// What `lbscope watch` keeps while events arrive: per Service frontend, each backend's new
/// and open connections and each client's backends. Bounded: at most `maxClients` clients per
/// service are tracked for stickiness (the rest are counted only).
struct LiveServiceTable {
  struct Backend {
    var connections = 0
    var open = 0
  }
  struct Service {
    var proto: TransportProtocol
    var frontend: Endpoint
    var backends: [Endpoint: Backend] = [:]
    var clients: [IPAddress: [Endpoint: Int]] = [:]
    var connections = 0
  }
  struct Key: Hashable {
    var original: FiveTuple
    var zone: UInt16?
  }
  struct Open {
    var observation: ConnectionObservation
    var frontend: Endpoint
  }

  var services: [Endpoint: Service] = [:]
  var open: [Key: Open] = [:]
  /// Destroy events for connections that began before the watch.
  var startedBefore = 0
  /// New connections not tracked because `maxOpen` were open at once.
  var droppedOpen = 0
  var events = 0
  let filter: Endpoint?
  let maxClients = 10_000
  let maxOpen = 1_000_000

  init(filter: Endpoint?) { self.filter = filter }

  /// Takes one event; returns the connection when it is finished (destroyed, or evicted) so
  /// the caller can hand it to the analyzer, and the observation for the stream.
  mutating func take(_ entry: ConntrackEntry, finished: (ConnectionObservation) -> Void)
    -> ConnectionObservation?
  {
    guard var observation = entry.observation(input: 0) else { return nil }
    events += 1
    guard observation.isDestinationTranslated else { return nil }
    if let filter, observation.frontend != filter { return nil }
    let key = Key(original: observation.original, zone: entry.zone)
    switch entry.event {
    case .new?:
      if let previous = open.removeValue(forKey: key) { close(previous, finished: finished) }
      if open.count >= maxOpen {
        droppedOpen += 1
        return nil
      }
      open[key] = Open(observation: observation, frontend: observation.frontend)
      var service =
        services[observation.frontend]
        ?? Service(proto: observation.original.proto, frontend: observation.frontend)
      service.connections += 1
      service.backends[observation.backend, default: Backend()].connections += 1
      service.backends[observation.backend, default: Backend()].open += 1
      let client = observation.client.address
      if service.clients[client] != nil || service.clients.count < maxClients {
        service.clients[client, default: [:]][observation.backend, default: 0] += 1
      }
      services[observation.frontend] = service
      return observation
    case .destroy?:
      guard let opened = open.removeValue(forKey: key) else {
        startedBefore += 1
        return nil
      }
      services[opened.frontend]?.backends[opened.observation.backend]?.open -= 1
      // The destroy event carries the final status (whether the responder ever answered) and
      // the counters, but no protocol state: the kernel leaves protoinfo out of destroy events.
      observation.state = nil
      finished(observation)
      return nil
    default:
      return nil
    }
  }

  /// A connection still open at the end: its state is unknown, not failed.
  mutating func close(_ record: Open, finished: (ConnectionObservation) -> Void) {
    var observation = record.observation
    observation.state = nil
    observation.replied = nil
    finished(observation)
  }

  /// Hands over every connection still open, in no particular order.
  mutating func finishOpen(_ finished: (ConnectionObservation) -> Void) {
    for record in open.values { close(record, finished: finished) }
    open.removeAll()
  }

  /// Clients with at least `minimum` connections, all to one backend of a service with more
  /// than one backend: candidates for affinity pinning.
  func stickyClients(_ service: Service, minimum: Int = 5) -> [(IPAddress, Endpoint, Int)] {
    guard service.backends.count > 1 else { return [] }
    return service.clients.compactMap { client, backends in
      guard backends.count == 1, let (backend, count) = backends.first, count >= minimum else { return nil }
      return (client, backend, count)
    }.sorted { ($0.2, $1.0) > ($1.2, $0.0) }
  }
}
