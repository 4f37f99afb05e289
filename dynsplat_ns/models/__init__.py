"""DynamicSplatModel (a SplatfactoModel with time) and its pipeline."""
