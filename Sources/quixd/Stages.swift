import QuixPipeline
import SpeedingTicketStage

/// Every stage compiled into quixd: the built-in ones and those of the stage targets under
/// Sources/Stages/. A new stage target adds its descriptor here (and its target to quixd's
/// dependencies in Package.swift).
let compiledStages = StageRegistry.builtIn.registering([
    SpeedingTicketStage.descriptor
])
