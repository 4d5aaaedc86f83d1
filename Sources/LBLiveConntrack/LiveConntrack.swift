import LBCore
